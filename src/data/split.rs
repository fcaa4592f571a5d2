//! One split of a dataset (train or test) held on the host as bytes, and its batches.

use burn::prelude::*;

use super::augment::{Augment, push_augmented};
use super::dataset::DataError;
use crate::rng::Rng;

/// One split (train or test) of a dataset, kept on the host as bytes.
#[derive(Debug, Clone)]
pub struct Split {
    /// `len * height * width` pixels, 0..=255.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels (1 for grey images); pixels are channel-first per image.
    pub channels: usize,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.image_size());
        }
    }

    /// A copy of the last `n` images (all of them if there are fewer).
    pub fn tail(&self, n: usize) -> Split {
        let start = self.len().saturating_sub(n);
        Split {
            labels: self.labels[start..].to_vec(),
            pixels: self.pixels[start * self.image_size()..].to_vec(),
            height: self.height,
            width: self.width,
            channels: self.channels,
        }
    }

    /// Splits off the last `n` images into a new split (e.g. a validation set).
    pub fn split_off(&mut self, n: usize) -> Split {
        let keep = self.len().saturating_sub(n);
        Split {
            labels: self.labels.split_off(keep),
            pixels: self.pixels.split_off(keep * self.image_size()),
            height: self.height,
            width: self.width,
            channels: self.channels,
        }
    }

    /// Image `i` as floats in [0, 1].
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        let s = self.image_size();
        self.pixels[i * s..(i + 1) * s]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect()
    }

    /// A batch of the given images, scaled to [0, 1].
    ///
    /// # Shapes
    /// returns images `[B, C, H, W]` and labels `[B]`
    pub fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        self.batch_augmented(indices, device, Augment::None, 0)
    }

    /// [`Split::batch`] with every image varied by `augment`, drawn from `seed`.
    ///
    /// # Shapes
    /// returns images `[B, C, H, W]` and labels `[B]`
    pub fn batch_augmented(
        &self,
        indices: &[usize],
        device: &Device,
        augment: Augment,
        seed: u64,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let s = self.image_size();
        let mut px = Vec::with_capacity(indices.len() * s);
        let mut rng = Rng::new(seed);
        let dims = (self.channels, self.height, self.width);
        for &i in indices {
            push_augmented(&self.pixels[i * s..(i + 1) * s], dims, augment, &mut rng, &mut px);
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let images = Tensor::from_data(
            TensorData::new(px, [indices.len(), self.channels, self.height, self.width]),
            device,
        );
        let labels = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        (images, labels)
    }

    /// Mean and standard deviation of each channel's pixels, scaled to [0, 1] (the std
    /// never below 1e-3, so a constant channel still normalises).
    pub fn channel_stats(&self) -> (Vec<f64>, Vec<f64>) {
        let plane = self.height * self.width;
        let mut sums = vec![(0.0f64, 0.0f64); self.channels];
        for image in self.pixels.chunks_exact(self.image_size().max(1)) {
            for (c, px) in image.chunks_exact(plane.max(1)).enumerate() {
                let (s, s2) = px.iter().fold((0u64, 0u64), |(s, s2), &p| {
                    let p = u64::from(p);
                    (s + p, s2 + p * p)
                });
                sums[c].0 += s as f64;
                sums[c].1 += s2 as f64;
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        sums.iter()
            .map(|&(s, s2)| {
                let mean = s / n / 255.0;
                let var = (s2 / n / (255.0 * 255.0) - mean * mean).max(0.0);
                (mean, var.sqrt().max(1e-3))
            })
            .unzip()
    }

    /// Batches of indices covering the split once; shuffled with `seed` when given.
    pub fn batches(&self, batch: usize, shuffle: Option<u64>) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = shuffle {
            Rng::new(seed).shuffle(&mut order);
        }
        order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
    }
}

impl Split {
    /// Checks that this split can feed a model taking `input` = (channels, height, width)
    /// images and `classes` classes: the image size matches and every label is a class.
    pub fn check_fits(&self, input: (usize, usize, usize), classes: usize) -> Result<(), DataError> {
        let (c, h, w) = input;
        if (self.channels, self.height, self.width) != input {
            return Err(DataError::ModelMismatch(format!(
                "the model takes {h}x{w}x{c} images (height x width x channels) but the data has {}x{}x{}",
                self.height, self.width, self.channels
            )));
        }
        if let Some(&label) = self.labels.iter().find(|&&l| l as usize >= classes) {
            return Err(DataError::ModelMismatch(format!(
                "the data has label {label} but the model has only {classes} classes"
            )));
        }
        Ok(())
    }
}
