//! Validation of a [`CapsNetConfig`] before anything is allocated: every size within a
//! range that has a reason, every product of sizes computed with checked arithmetic, and
//! the parameters and per-image activations within a memory budget.

use super::config::{CapsNetConfig, ConfigError, Geometry};

/// Most input channels (grey, RGB, RGBA).
pub const MAX_IN_CHANNELS: usize = 4;
/// Largest input side in pixels (CIFAR is 32, Tiny-ImageNet 64).
pub const MAX_INPUT_SIDE: usize = 1024;
/// Largest convolution kernel side.
pub const MAX_KERNEL: usize = 64;
/// Most classes (ImageNet has 1,000).
pub const MAX_CLASSES: usize = 1000;
/// Most routing iterations (the paper uses 3; routing converges in a handful).
pub const MAX_ROUTING_ITERS: usize = 100;
/// Most hidden layers of the decoder.
pub const MAX_DECODER_LAYERS: usize = 8;
/// Largest single layer size (channels, capsule types or dims, decoder width).
pub const MAX_LAYER: usize = 1 << 16;
/// Most parameters of a model (2^28 f32 values = 1 GiB; the `paper` model has 8.2 M).
pub const MAX_PARAMS: usize = 1 << 28;
/// Most f32 activations one image may need in a forward pass (2^26 = 256 MiB; the `paper`
/// model needs ~0.9 M).
pub const MAX_ACTIVATIONS_PER_IMAGE: usize = 1 << 26;
/// Working-memory budget of one batch (bytes), checked by [`CapsNetConfig::check_batch`].
pub const MAX_BATCH_BYTES: usize = 8 << 30;

/// Multiplies sizes, failing with the name of the quantity on overflow.
pub(crate) fn product(what: &'static str, factors: &[usize]) -> Result<usize, ConfigError> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or(ConfigError::Overflow(what))
}

/// Adds sizes, failing with the name of the quantity on overflow.
fn sum(what: &'static str, terms: &[usize]) -> Result<usize, ConfigError> {
    terms
        .iter()
        .try_fold(0usize, |acc, &t| acc.checked_add(t))
        .ok_or(ConfigError::Overflow(what))
}

/// Counts of a valid config, all computed without overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters (f32 values).
    pub params: usize,
    /// Activations of one image's forward pass (f32 values, routing included).
    pub activations_per_image: usize,
}

/// Parameters (weights, BatchNorm scale and shift) and per-image activations (each
/// convolution's output, twice: before and after BatchNorm) of a backbone. The sizes are
/// bounded by the range checks, so they do not overflow.
fn backbone_sizes(p: &super::backbone::BackbonePlan, c: &CapsNetConfig) -> (usize, usize) {
    p.convs((c.height, c.width))
        .into_iter()
        .fold((0, 0), |(params, acts), (_, s, at)| {
            let weights = s.weight_shape().iter().product::<usize>() + 2 * s.outputs;
            let outputs = 2 * s.outputs * s.out_side(at.0) * s.out_side(at.1);
            (params + weights, acts + outputs)
        })
}

impl CapsNetConfig {
    /// Checks every field against its range (see the `MAX_*` constants of this module).
    pub(crate) fn check_ranges(&self) -> Result<(), ConfigError> {
        self.check_sizes()?;
        self.check_decoder()?;
        self.check_reals()?;
        self.check_normalisation()
    }

    /// Input normalisation: none, or one finite mean and one positive std per channel.
    fn check_normalisation(&self) -> Result<(), ConfigError> {
        let (mean, std) = (&self.input_mean, &self.input_std);
        let range =
            |field: &'static str, value: String, range: &str, reason: &'static str| ConfigError::Range {
                field,
                value,
                range: range.into(),
                reason,
            };
        if mean.len() != std.len() || !(mean.is_empty() || mean.len() == self.in_channels) {
            return Err(range(
                "input_mean",
                format!("{} means and {} stds", mean.len(), std.len()),
                &format!("0 or {} of each", self.in_channels),
                "one per input channel",
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite() || m.abs() > 1e3) {
            return Err(range(
                "input_mean",
                format!("{m:?}"),
                "-1e3..=1e3",
                "a finite channel mean",
            ));
        }
        if let Some(s) = std.iter().find(|s| !s.is_finite() || **s < 1e-6 || **s > 1e3) {
            return Err(range(
                "input_std",
                format!("{s:?}"),
                "1e-6..=1e3",
                "a positive channel std",
            ));
        }
        Ok(())
    }

    /// The size fields, each within its range.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let ranges: [(&'static str, usize, usize, usize, &'static str); 12] = [
            (
                "in_channels",
                self.in_channels,
                1,
                MAX_IN_CHANNELS,
                "grey, RGB or RGBA",
            ),
            ("height", self.height, 1, MAX_INPUT_SIDE, "input side in pixels"),
            ("width", self.width, 1, MAX_INPUT_SIDE, "input side in pixels"),
            ("conv1_channels", self.conv1_channels, 1, MAX_LAYER, "layer size"),
            ("conv1_kernel", self.conv1_kernel, 1, MAX_KERNEL, "kernel side"),
            (
                "primary_kernel",
                self.primary_kernel,
                1,
                MAX_KERNEL,
                "kernel side",
            ),
            ("primary_stride", self.primary_stride, 1, MAX_KERNEL, "stride"),
            ("types", self.types, 1, MAX_LAYER, "capsule types"),
            ("primary_dim", self.primary_dim, 1, 256, "capsule dimensions"),
            (
                "classes",
                self.classes,
                2,
                MAX_CLASSES,
                "a classifier needs two classes",
            ),
            ("class_dim", self.class_dim, 1, 256, "capsule dimensions"),
            (
                "routing_iters",
                self.routing_iters,
                1,
                MAX_ROUTING_ITERS,
                "routing converges in a few",
            ),
        ];
        match ranges
            .into_iter()
            .find(|(_, v, min, max, _)| !(min..=max).contains(&v))
        {
            Some((field, value, min, max, reason)) => Err(ConfigError::Range {
                field,
                value: value.to_string(),
                range: format!("{min}..={max}"),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The decoder's depth and layer widths.
    fn check_decoder(&self) -> Result<(), ConfigError> {
        if self.decoder_hidden.len() > MAX_DECODER_LAYERS {
            return Err(ConfigError::Range {
                field: "decoder_hidden",
                value: format!("{} layers", self.decoder_hidden.len()),
                range: format!("0..={MAX_DECODER_LAYERS} layers"),
                reason: "decoder depth",
            });
        }
        match self
            .decoder_hidden
            .iter()
            .find(|&&h| !(1..=MAX_LAYER).contains(&h))
        {
            Some(&h) => Err(ConfigError::Range {
                field: "decoder_hidden",
                value: h.to_string(),
                range: format!("1..={MAX_LAYER}"),
                reason: "a decoder layer needs units",
            }),
            None => Ok(()),
        }
    }

    /// The loss and init settings: finite and within their ranges.
    fn check_reals(&self) -> Result<(), ConfigError> {
        let reals = [
            ("reconstruction_weight", self.reconstruction_weight, 0.0, 1e6),
            ("m_plus", self.m_plus, 0.0, 1.0),
            ("m_minus", self.m_minus, 0.0, 1.0),
            ("lambda_", self.lambda_, 0.0, 1e6),
            ("digit_init_std", self.digit_init_std, 0.0, 1e3),
        ];
        // written so that NaN fails too
        match reals
            .into_iter()
            .find(|&(_, v, min, max)| !(v >= min && v <= max))
        {
            Some((field, value, min, max)) => Err(ConfigError::Range {
                field,
                value: format!("{value:?}"),
                range: format!("{min:?}..={max:?}"),
                reason: "a finite loss or init setting",
            }),
            None => Ok(()),
        }
    }

    /// Parameter and per-image activation counts, with overflow and budget checks.
    pub fn footprint(&self) -> Result<Footprint, ConfigError> {
        self.footprint_of(self.raw_geometry()?)
    }

    /// [`CapsNetConfig::footprint`] for the already checked geometry `g`.
    pub(crate) fn footprint_of(&self, g: Geometry) -> Result<Footprint, ConfigError> {
        let c = self;
        let n = product("capsules", &[c.types, g.cells()])?;
        let conv1 = product(
            "conv1 weights",
            &[c.conv1_channels, c.conv1_inputs(), c.conv1_kernel, c.conv1_kernel],
        )?;
        let primary = product(
            "primary weights",
            &[
                c.types,
                c.primary_dim,
                c.conv1_channels,
                c.primary_kernel,
                c.primary_kernel,
            ],
        )?;
        let digit = product("digit weights", &[n, c.classes, c.class_dim, c.primary_dim])?;
        let mut decoder = 0usize;
        let mut d_in = product("class capsules", &[c.classes, c.class_dim])?;
        let outputs: Vec<usize> = if c.has_decoder() {
            let pixels = product("pixels", &[c.in_channels, c.height, c.width])?;
            c.decoder_hidden.iter().copied().chain([pixels]).collect()
        } else {
            Vec::new()
        };
        for &d_out in &outputs {
            let w = product("decoder weights", &[d_in, d_out])?;
            decoder = sum("decoder weights", &[decoder, w, d_out])?;
            d_in = d_out;
        }
        let biases = sum(
            "biases",
            &[c.conv1_channels, c.types * c.primary_dim, c.classes * c.class_dim],
        )?;
        let (backbone_params, backbone_acts) = c.backbone_plan().map_or((0, 0), |p| backbone_sizes(&p, c));
        let params = sum(
            "parameters",
            &[conv1, primary, digit, decoder, biases, backbone_params],
        )?;
        if params > MAX_PARAMS {
            return Err(ConfigError::Budget {
                what: "parameters",
                needed: params,
                limit: MAX_PARAMS,
            });
        }
        let conv1_out = product("conv1 activations", &[c.conv1_channels, g.conv1_h, g.conv1_w])?;
        let primary_out = product("primary activations", &[c.types, c.primary_dim, g.cells()])?;
        let votes = product("votes", &[n, c.classes, c.class_dim])?;
        // routing keeps a detached copy of the votes and per-iteration couplings
        let routing = product("routing", &[n, c.classes, c.routing_iters.saturating_add(1)])?;
        let activations = sum(
            "activations",
            &[
                backbone_acts,
                conv1_out,
                primary_out,
                votes,
                votes,
                routing,
                outputs.iter().sum(),
            ],
        )?;
        if activations > MAX_ACTIVATIONS_PER_IMAGE {
            return Err(ConfigError::Budget {
                what: "activations per image",
                needed: activations,
                limit: MAX_ACTIVATIONS_PER_IMAGE,
            });
        }
        Ok(Footprint {
            params,
            activations_per_image: activations,
        })
    }

    /// Checks that a batch of `batch` images fits [`MAX_BATCH_BYTES`] of working memory
    /// (activations, their gradients and the weights' copies, estimated).
    pub fn check_batch(&self, batch: usize) -> Result<(), ConfigError> {
        let f = self.footprint()?;
        let per_image = product("batch memory", &[f.activations_per_image, 4, 3])?;
        let bytes = product("batch memory", &[per_image, batch])?
            .checked_add(f.params.saturating_mul(4 * 4))
            .ok_or(ConfigError::Overflow("batch memory"))?;
        if bytes > MAX_BATCH_BYTES {
            return Err(ConfigError::BatchBudget {
                batch,
                needed_mb: bytes >> 20,
                limit_mb: MAX_BATCH_BYTES >> 20,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn presets_are_valid_and_paper_fits_batch_128() {
        for p in Preset::ALL {
            let f = p.config().footprint().unwrap();
            assert!(f.params > 0 && f.activations_per_image > 0);
        }
        let paper = Preset::Paper.config();
        assert_eq!(paper.footprint().unwrap().params, 8_215_728);
        paper.check_batch(128).unwrap();
        assert!(matches!(
            paper.check_batch(65_536),
            Err(ConfigError::BatchBudget { .. })
        ));
    }

    #[test]
    fn out_of_range_fields_are_refused_with_their_name() {
        let base = Preset::Tiny.config();
        let cases = [
            base.clone().with_classes(1),
            base.clone().with_routing_iters(1_000_000_000),
            base.clone().with_routing_iters(usize::MAX),
            base.clone().with_decoder_hidden(vec![0]),
            base.clone().with_m_plus(f64::NAN),
            base.clone().with_types(usize::MAX / 3),
            base.clone().for_input(1, 100_000, 100_000),
        ];
        for c in cases {
            let err = c.geometry().unwrap_err();
            assert!(matches!(err, ConfigError::Range { .. }), "{err}");
        }
    }

    #[test]
    fn products_that_wrap_or_exceed_the_budget_are_refused() {
        // each size in range, the products far too large
        let c = Preset::Tiny
            .config()
            .with_types(MAX_LAYER)
            .with_primary_dim(256)
            .with_conv1_channels(MAX_LAYER);
        assert!(matches!(c.footprint(), Err(ConfigError::Budget { .. })));
        let big = Preset::Paper.config().for_input(4, 1024, 1024);
        assert!(matches!(big.footprint(), Err(ConfigError::Budget { .. })));
        assert!(matches!(
            product("x", &[usize::MAX, 2]),
            Err(ConfigError::Overflow("x"))
        ));
    }
}
