//! The primary-capsule convolution in two equivalent forms, and the choice between them by
//! device and batch size. It is most of a training step's work (a 9x9 convolution of 256
//! channels into 256 in the paper preset), and which form is fastest depends on the
//! backend: the convolution of [`fast_conv`] on the CPU for large batches; one gather
//! (im2col) and one matmul for small CPU batches and for every batch on a GPU, where burn's
//! convolution of this shape is 6x slower.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::fast_conv;
use burn::prelude::*;

use super::CapsNet;

/// CPU batches smaller than this use [`PrimaryConv::Gather`].
pub const IM2COL_MAX_BATCH: usize = 16;

/// Environment variable that forces one form (`conv` or `gather`), for benchmarking the
/// forms against each other.
pub const FORM_VARIABLE: &str = "SPARSECAPS_PRIMARY_CONV";

/// How the primary convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryConv {
    /// The convolution of [`fast_conv::conv2d_bias`] (its own on the CPU, burn's elsewhere).
    Conv,
    /// The receptive fields gathered with one index select (im2col), then one matmul;
    /// under autodiff the gather's backward is a scatter.
    Gather,
}

/// Most values one gather of receptive fields may hold (1 GiB of `f32`); larger batches
/// are gathered in parts, under the size GPU runtimes allow for one buffer, and under the
/// device's own buffer limit where that is smaller.
const MAX_FIELD_VALUES: usize = 1 << 28;

/// Images per gather when each needs `per_image` values: as many as fit in `max_values`
/// (and [`MAX_FIELD_VALUES`]), at least one.
fn images_per_gather(per_image: usize, max_values: Option<u64>) -> usize {
    let limit = max_values.map_or(MAX_FIELD_VALUES, |v| {
        usize::try_from(v).unwrap_or(usize::MAX).min(MAX_FIELD_VALUES)
    });
    (limit / per_image.max(1)).max(1)
}

impl fmt::Display for PrimaryConv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conv => "conv",
            Self::Gather => "gather",
        })
    }
}

/// An unknown form name.
#[derive(Debug, thiserror::Error)]
#[error("unknown primary convolution '{0}' (expected conv or gather)")]
pub struct UnknownForm(pub String);

impl FromStr for PrimaryConv {
    type Err = UnknownForm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "conv" => Ok(Self::Conv),
            "gather" | "im2col" => Ok(Self::Gather),
            _ => Err(UnknownForm(s.to_string())),
        }
    }
}

/// The form forced by [`FORM_VARIABLE`], read once; an unknown value is ignored.
fn forced() -> Option<PrimaryConv> {
    static FORCED: OnceLock<Option<PrimaryConv>> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var(FORM_VARIABLE).ok()?.parse().ok())
}

impl PrimaryConv {
    /// The fastest form for `batch` images on `device` (the CPU or a GPU), unless
    /// [`FORM_VARIABLE`] forces one.
    pub fn choose(batch: usize, device: &Device) -> Self {
        if let Some(form) = forced() {
            return form;
        }
        // device equality ignores autodiff
        let cpu = *device == Device::flex();
        if cpu && batch >= IM2COL_MAX_BATCH {
            Self::Conv
        } else {
            Self::Gather
        }
    }
}

impl CapsNet {
    /// The primary-capsule convolution (before reshaping and squashing) in the given form.
    ///
    /// # Shapes
    /// - `h`: `[B, C1, H1, W1]` -> `[B, T * D, G_h, G_w]`
    pub fn primary_conv(&self, h: Tensor<4>, form: PrimaryConv) -> Tensor<4> {
        let c = &self.config;
        let s = c.primary_stride;
        if form == PrimaryConv::Conv {
            return fast_conv::conv2d_bias(h, self.primary_weight.val(), self.primary_bias.val(), s, 0);
        }
        let [b, c1, ..] = h.dims();
        let k = c.primary_kernel;
        let g = self.geometry();
        let per_image = c1 * k * k * g.cells();
        let max_values = crate::device::max_buffer_bytes(&h.device()).map(|b| b / 4);
        let part = images_per_gather(per_image, max_values);
        if b > part {
            let parts = h.split(part, 0);
            return Tensor::cat(parts.into_iter().map(|p| self.primary_conv(p, form)).collect(), 0);
        }
        // [B, C1 * k * k, L] -> [C1 * k * k, B * L], rows in the filters' [out, in, kh, kw]
        // order: one unbatched matmul, so the filters' gradient is one [out, C1 * k * k]
        // product rather than one per image summed afterwards (2.7 GB in the paper preset at
        // batch 128, more than a GPU buffer may hold)
        let ck = c1 * k * k;
        let cols = self
            .gathered_fields(h)
            .swap_dims(0, 1)
            .reshape([ck, b * g.cells()]);
        let out = self.primary_types() * c.primary_dim;
        let filters = self.primary_weight.val().reshape([out, ck]);
        let y = filters.matmul(cols) + self.primary_bias.val().reshape([out, 1]);
        y.reshape([out, b, g.cells()])
            .swap_dims(0, 1)
            .reshape([b, out, g.grid_h, g.grid_w])
    }

    /// Receptive fields by one index select.
    ///
    /// # Shapes
    /// - `h`: `[B, C1, H1, W1]` -> `[B, C1 * k * k, G_h * G_w]`
    fn gathered_fields(&self, h: Tensor<4>) -> Tensor<3> {
        let [b, c1, h1, w1] = h.dims();
        let g = self.geometry();
        let (k, s) = (self.config.primary_kernel, self.config.primary_stride);
        let mut index = Vec::with_capacity(k * k * g.cells());
        for ky in 0..k {
            for kx in 0..k {
                for y in 0..g.grid_h {
                    for x in 0..g.grid_w {
                        index.push(((y * s + ky) * w1 + x * s + kx) as i64);
                    }
                }
            }
        }
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [k * k * g.cells()]), &h.device());
        h.reshape([b, c1, h1 * w1])
            .select(2, index)
            .reshape([b, c1 * k * k, g.cells()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn all_forms_compute_the_same_convolution_and_gradient() {
        let dev = Device::flex().autodiff();
        for cfg in [Preset::Tiny.config(), Preset::Tiny.config().for_input(3, 32, 30)] {
            let net = CapsNet::init(&cfg, 2, &dev).unwrap();
            let g = cfg.geometry().unwrap();
            let h = Tensor::<4>::random(
                [3, cfg.conv1_channels, g.conv1_h, g.conv1_w],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &dev,
            )
            .require_grad();
            let host = |t: Tensor<4>| t.into_data().try_into_vec_as::<f32>().unwrap();
            let run = |form| {
                let y = net.primary_conv(h.clone(), form);
                let grads = (y.clone() * y.clone()).sum().backward();
                let gh = h.grad(&grads).unwrap();
                let gw = net.primary_weight.val().grad(&grads).unwrap();
                [host(y.detach()), host(gh), host(gw)]
            };
            let want = run(PrimaryConv::Conv);
            let got = run(PrimaryConv::Gather);
            for (name, (w, g)) in ["output", "input grad", "weight grad"]
                .iter()
                .zip(want.iter().zip(&got))
            {
                assert_eq!(w.len(), g.len());
                let scale = w.iter().fold(1f32, |m, v| m.max(v.abs()));
                let worst = w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst < 1e-5 * scale, "gather {name}: {worst} of {scale}");
            }
        }
    }

    #[test]
    fn gathers_split_under_the_device_buffer_limit() {
        // the paper preset: 256 channels, 9x9 fields, 6x6 cells
        let per_image = 256 * 81 * 36;
        assert_eq!(images_per_gather(per_image, None), MAX_FIELD_VALUES / per_image);
        // lavapipe's 2^27-byte buffers hold 2^25 f32 values: 44 images, not 128
        assert_eq!(images_per_gather(per_image, Some(1 << 25)), 44);
        assert!(44 * per_image <= 1 << 25 && 45 * per_image > 1 << 25);
        // a limit above the fixed one changes nothing; a tiny one still gathers an image
        assert_eq!(
            images_per_gather(per_image, Some(u64::MAX)),
            MAX_FIELD_VALUES / per_image
        );
        assert_eq!(images_per_gather(per_image, Some(10)), 1);
    }

    #[test]
    fn forms_parse_and_print() {
        for form in [PrimaryConv::Conv, PrimaryConv::Gather] {
            assert_eq!(form.to_string().parse::<PrimaryConv>().unwrap(), form);
        }
        assert!("fft".parse::<PrimaryConv>().is_err());
    }

    #[test]
    fn the_cpu_takes_the_convolution_for_large_batches_with_or_without_autodiff() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            assert_eq!(PrimaryConv::choose(128, &device), PrimaryConv::Conv);
            assert_eq!(PrimaryConv::choose(1, &device), PrimaryConv::Gather);
        }
    }
}
