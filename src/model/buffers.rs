//! Batches under a device's per-buffer limit. A GPU (or lavapipe, Vulkan on the CPU, with
//! 128 MiB) cannot hold a tensor larger than its largest buffer, and the largest tensors of
//! a pass grow with the batch: the votes (`paper`: 1,152 capsules x 10 classes x 16 values
//! per image) and conv1's output. The receptive-field gather of the primary convolution
//! splits itself ([`super::primary_conv`]); evaluation takes fewer images per pass, and
//! training refuses a batch that cannot fit.

use super::CapsNet;

/// A training batch larger than the device's buffers can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a batch of {batch} needs a {needed_mib} MiB tensor ({what}) but this device's buffers hold at most {limit_mib} MiB: {}",
    if *fits == 0 { "not even one image fits; use --device cpu".to_string() } else { format!("use --batch {fits} or less, or --device cpu") }
)]
pub struct BatchTooLarge {
    /// The batch asked for.
    pub batch: usize,
    /// What the largest tensor is.
    pub what: &'static str,
    /// Its size at that batch.
    pub needed_mib: u64,
    /// The device's limit.
    pub limit_mib: u64,
    /// The largest batch that fits (0: not one image).
    pub fits: usize,
}

impl CapsNet {
    /// The largest tensor one image needs in a forward pass (f32 values) and what it is:
    /// a backbone layer's output or unfolded input (im2col), conv1's, the primary capsules,
    /// the votes, or a decoder layer. The gather of receptive fields of the primary
    /// convolution is left out: it splits itself.
    pub fn largest_tensor_per_image(&self) -> (usize, &'static str) {
        let c = &self.config;
        let g = self.geometry();
        let cells = g.conv1_h * g.conv1_w;
        let conv1_inputs = self.conv1_weight.dims()[1];
        let unfolded = conv1_inputs
            .saturating_mul(c.conv1_kernel * c.conv1_kernel)
            .saturating_mul(cells);
        let conv1 = self.conv1_weight.dims()[0] * cells;
        let primary = self.primary_weight.dims()[0] * g.cells();
        let votes = self.capsules() * c.classes * c.class_dim;
        let pixels = c.in_channels * c.height * c.width;
        let decoder = c
            .decoder_hidden
            .iter()
            .copied()
            .chain([pixels])
            .max()
            .unwrap_or(0);
        [
            (self.backbone_largest(), "a backbone layer"),
            (conv1.max(unfolded), "conv1"),
            (primary, "the primary capsules"),
            (votes, "the votes"),
            (if c.has_decoder() { decoder } else { 0 }, "the decoder"),
        ]
        .into_iter()
        .max_by_key(|&(n, _)| n)
        .unwrap_or((0, ""))
    }

    /// The largest output or unfolded input (im2col, for kernels over 1x1) of a backbone
    /// layer, per image; 0 without a backbone.
    fn backbone_largest(&self) -> usize {
        let c = &self.config;
        let Some(plan) = c.backbone_plan() else {
            return 0;
        };
        plan.convs((c.height, c.width))
            .into_iter()
            .map(|(_, s, at)| {
                let cells = s.out_side(at.0) * s.out_side(at.1);
                let unfolded = if s.kernel > 1 {
                    s.inputs.saturating_mul(s.kernel * s.kernel).saturating_mul(cells)
                } else {
                    0
                };
                (s.outputs * cells).max(unfolded)
            })
            .max()
            .unwrap_or(0)
    }

    /// Most images one pass may take on `device` under its buffer limit (`None`: no
    /// limit): `batch`, or fewer where a tensor would not fit; at least one.
    pub fn batch_within(&self, batch: usize, max_buffer_bytes: Option<u64>) -> usize {
        let Some(limit) = max_buffer_bytes else {
            return batch.max(1);
        };
        let per_image = (self.largest_tensor_per_image().0 as u64).saturating_mul(4);
        batch
            .min(crate::device::items_per_buffer(limit, per_image))
            .max(1)
    }

    /// [`CapsNet::batch_within`] the limit of the device this model is on.
    pub fn batch_on_device(&self, batch: usize) -> usize {
        let device = self.digit_weight.val().device();
        self.batch_within(batch, crate::device::max_buffer_bytes(&device))
    }

    /// Checks that a training batch fits the buffers of the device this model is on.
    pub fn check_batch_on_device(&self, batch: usize) -> Result<(), BatchTooLarge> {
        let device = self.digit_weight.val().device();
        let Some(limit) = crate::device::max_buffer_bytes(&device) else {
            return Ok(());
        };
        let (per_image, what) = self.largest_tensor_per_image();
        let bytes_per_image = (per_image as u64).saturating_mul(4);
        let needed = bytes_per_image.saturating_mul(batch as u64);
        if needed <= limit {
            return Ok(());
        }
        Err(BatchTooLarge {
            batch,
            what,
            needed_mib: needed.div_ceil(1 << 20),
            limit_mib: limit >> 20,
            fits: crate::device::items_per_buffer(limit, bytes_per_image),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::model::Preset;

    #[test]
    fn batches_shrink_to_the_buffer_limit() {
        let dev = Device::flex();
        let paper = CapsNet::init(&Preset::Paper.config(), 1, &dev).unwrap();
        // 1,152 capsules x 10 classes x 16 values
        assert_eq!(paper.largest_tensor_per_image(), (184_320, "the votes"));
        assert_eq!(paper.batch_within(250, None), 250);
        // lavapipe's 128 MiB: 182 images of 720 KiB votes
        assert_eq!(paper.batch_within(250, Some(128 << 20)), 182);
        assert_eq!(paper.batch_within(128, Some(128 << 20)), 128);
        assert_eq!(paper.batch_within(250, Some(1)), 1);
        // the CPU has no limit: any batch passes
        paper.check_batch_on_device(4096).unwrap();
    }
}
