//! A split uploaded to the compute device once, so that training and evaluation cut their
//! batches there (a slice or an index-select) instead of building and uploading every
//! batch on the host.

use burn::prelude::*;

use super::Split;

/// A split's images and labels on a device, images as floats in [0, 1].
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `[N, C, H, W]`
    images: Tensor<4>,
    /// `[N]`
    labels: Tensor<1, Int>,
}

impl DeviceSplit {
    /// Uploads `split` to `device` (4 bytes per pixel there), as one batch of all its
    /// images.
    pub fn upload(split: &Split, device: &Device) -> Self {
        let all: Vec<usize> = (0..split.len()).collect();
        let (images, labels) = split.batch(&all, device);
        Self { images, labels }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `start..end` in order.
    ///
    /// # Shapes
    /// returns images `[end - start, C, H, W]` and labels `[end - start]`
    pub fn range(&self, start: usize, end: usize) -> (Tensor<4>, Tensor<1, Int>) {
        (
            self.images.clone().slice(start..end),
            self.labels.clone().slice(start..end),
        )
    }

    /// The images at `indices`, gathered on the device.
    ///
    /// # Shapes
    /// - `indices`: `[B]`
    /// - returns images `[B, C, H, W]` and labels `[B]`
    pub fn select(&self, indices: Tensor<1, Int>) -> (Tensor<4>, Tensor<1, Int>) {
        (
            self.images.clone().select(0, indices.clone()),
            self.labels.clone().select(0, indices),
        )
    }

    /// An order of visiting the images (e.g. a shuffled epoch), uploaded once.
    ///
    /// # Shapes
    /// returns `[order.len()]`
    pub fn order(&self, order: &[usize]) -> Tensor<1, Int> {
        let values: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        Tensor::from_data(TensorData::new(values, [order.len()]), &self.images.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split() -> Split {
        Split {
            pixels: (0..5 * 2 * 2 * 3).map(|v| (v * 4) as u8).collect(),
            labels: vec![4, 3, 2, 1, 0],
            height: 2,
            width: 3,
            channels: 2,
        }
    }

    fn values(t: TensorData) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn device_batches_equal_host_batches() {
        let device = Device::flex();
        let s = split();
        let d = DeviceSplit::upload(&s, &device);
        assert_eq!(d.len(), 5);
        let (hx, hy) = s.batch(&[3, 0, 4], &device);
        let (dx, dy) = d.select(d.order(&[3, 0, 4]));
        assert_eq!(dx.dims(), [3, 2, 2, 3]);
        assert_eq!(values(dx.into_data()), values(hx.into_data()));
        assert_eq!(values(dy.into_data()), values(hy.into_data()));
        let (hx, hy) = s.batch(&[1, 2], &device);
        let (rx, ry) = d.range(1, 3);
        assert_eq!(values(rx.into_data()), values(hx.into_data()));
        assert_eq!(values(ry.into_data()), values(hy.into_data()));
    }
}
