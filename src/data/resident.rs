//! A split uploaded to the compute device once, so that training and evaluation cut their
//! batches there (a slice or an index-select) instead of building and uploading every
//! batch on the host.

use burn::prelude::*;

use super::Split;

/// A split's images and labels on a device, images as floats in [0, 1]: one tensor, or
/// consecutive parts where one would be over the device's largest buffer.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `[n, C, H, W]` images and `[n]` labels of each part, in order; every part but the
    /// last holds `part_len` images.
    parts: Vec<(Tensor<4>, Tensor<1, Int>)>,
    /// Images per part.
    part_len: usize,
    /// Images in all.
    len: usize,
    device: Device,
}

/// Images of `split` that one of `device`'s buffers holds (all of them where it has no
/// limit), at least one.
fn images_per_part(split: &Split, device: &Device) -> usize {
    let bytes_per_image = (split.image_size() as u64).saturating_mul(4);
    let all = split.len().max(1);
    crate::device::max_buffer_bytes(device).map_or(all, |limit| {
        crate::device::items_per_buffer(limit, bytes_per_image).clamp(1, all)
    })
}

impl DeviceSplit {
    /// Uploads `split` to `device` (4 bytes per pixel there): as one batch of all its
    /// images, or in as few parts as the device's buffer limit allows.
    pub fn upload(split: &Split, device: &Device) -> Self {
        let part_len = images_per_part(split, device);
        let all: Vec<usize> = (0..split.len()).collect();
        let mut parts: Vec<_> = all.chunks(part_len).map(|c| split.batch(c, device)).collect();
        if parts.is_empty() {
            parts.push(split.batch(&[], device));
        }
        Self {
            parts,
            part_len,
            len: split.len(),
            device: device.clone(),
        }
    }

    /// Whether `split` fits in one of `device`'s buffers, so that [`DeviceSplit::select`]
    /// gathers a batch with one index select.
    pub fn fits_whole(split: &Split, device: &Device) -> bool {
        images_per_part(split, device) >= split.len()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Images `start..end` in order.
    ///
    /// # Shapes
    /// returns images `[end - start, C, H, W]` and labels `[end - start]`
    pub fn range(&self, start: usize, end: usize) -> (Tensor<4>, Tensor<1, Int>) {
        let part = |p: usize, from: usize, to: usize| {
            let (x, y) = &self.parts[p];
            let base = p * self.part_len;
            (
                x.clone().slice(from - base..to - base),
                y.clone().slice(from - base..to - base),
            )
        };
        let (first, last) = (start / self.part_len, end.saturating_sub(1) / self.part_len);
        if end <= start || first == last || self.parts.len() == 1 {
            return part(first.min(self.parts.len() - 1), start, end);
        }
        let (xs, ys): (Vec<_>, Vec<_>) = (first..=last)
            .map(|p| {
                let from = start.max(p * self.part_len);
                let to = end.min((p + 1) * self.part_len);
                part(p, from, to)
            })
            .unzip();
        (Tensor::cat(xs, 0), Tensor::cat(ys, 0))
    }

    /// The images at `indices`, gathered on the device (one index select when the split is
    /// one tensor; else the indices are read back and each image sliced from its part).
    ///
    /// # Shapes
    /// - `indices`: `[B]`
    /// - returns images `[B, C, H, W]` and labels `[B]`
    pub fn select(&self, indices: Tensor<1, Int>) -> (Tensor<4>, Tensor<1, Int>) {
        if let [(x, y)] = self.parts.as_slice() {
            return (x.clone().select(0, indices.clone()), y.clone().select(0, indices));
        }
        let host: Vec<i64> = indices.into_data().try_into_vec_as::<i64>().unwrap_or_default();
        let (xs, ys): (Vec<_>, Vec<_>) = host
            .iter()
            .map(|&i| {
                let i = (i.max(0) as usize).min(self.len.saturating_sub(1));
                self.range(i, i + 1)
            })
            .unzip();
        (Tensor::cat(xs, 0), Tensor::cat(ys, 0))
    }

    /// An order of visiting the images (e.g. a shuffled epoch), uploaded once.
    ///
    /// # Shapes
    /// returns `[order.len()]`
    pub fn order(&self, order: &[usize]) -> Tensor<1, Int> {
        let values: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        Tensor::from_data(TensorData::new(values, [order.len()]), &self.device)
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

    #[test]
    fn a_split_in_parts_cuts_the_same_batches() {
        let device = Device::flex();
        let s = split();
        let whole = DeviceSplit::upload(&s, &device);
        // as if the device held two images per buffer
        let mut parts = DeviceSplit {
            parts: [[0, 1], [2, 3]]
                .iter()
                .map(|c| s.batch(c, &device))
                .chain([s.batch(&[4], &device)])
                .collect(),
            part_len: 2,
            len: 5,
            device: device.clone(),
        };
        for (start, end) in [(0, 5), (1, 3), (2, 4), (3, 5), (4, 5), (0, 1), (1, 5)] {
            let (wx, wy) = whole.range(start, end);
            let (px, py) = parts.range(start, end);
            assert_eq!(values(px.into_data()), values(wx.into_data()), "{start}..{end}");
            assert_eq!(values(py.into_data()), values(wy.into_data()), "{start}..{end}");
        }
        let (wx, wy) = whole.select(whole.order(&[4, 0, 3, 1]));
        let (px, py) = parts.select(parts.order(&[4, 0, 3, 1]));
        assert_eq!(values(px.into_data()), values(wx.into_data()));
        assert_eq!(values(py.into_data()), values(wy.into_data()));
        parts.len = 0;
        assert!(parts.is_empty());
        // the CPU has no buffer limit
        assert!(DeviceSplit::fits_whole(&s, &device));
        assert_eq!(whole.parts.len(), 1);
    }
}
