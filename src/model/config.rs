//! Hyper-parameters of the CapsNet and its named presets.

use burn::config::Config;

use super::backbone_plan::{BackboneKind, BackbonePlan, plan};
use std::fmt;
use std::str::FromStr;

/// Every hyper-parameter of the capsule network (saved beside the weights).
///
/// Field names follow `reference.json` of the reference fixture, so a fixture's
/// `config` object overlays onto this struct directly.
#[derive(Config, Debug, PartialEq)]
pub struct CapsNetConfig {
    /// Input channels (1 for MNIST, 3 for RGB).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Input height in pixels.
    #[config(default = 28)]
    pub height: usize,
    /// Input width in pixels.
    #[config(default = 28)]
    pub width: usize,
    /// conv1 output channels (C1).
    #[config(default = 256)]
    pub conv1_channels: usize,
    /// conv1 kernel side.
    #[config(default = 9)]
    pub conv1_kernel: usize,
    /// Primary-capsule convolution kernel side.
    #[config(default = 9)]
    pub primary_kernel: usize,
    /// Primary-capsule convolution stride.
    #[config(default = 2)]
    pub primary_stride: usize,
    /// Primary capsule types (T).
    #[config(default = 32)]
    pub types: usize,
    /// Dimensions of a primary capsule (D).
    #[config(default = 8)]
    pub primary_dim: usize,
    /// Classes (J).
    #[config(default = 10)]
    pub classes: usize,
    /// Dimensions of a class capsule (E).
    #[config(default = 16)]
    pub class_dim: usize,
    /// Dynamic-routing iterations (R).
    #[config(default = 3)]
    pub routing_iters: usize,
    /// Hidden sizes of the reconstruction decoder; empty switches the decoder off.
    #[config(default = "vec![512, 1024]")]
    pub decoder_hidden: Vec<usize>,
    /// Weight of the reconstruction loss (0.0005 in the paper).
    #[config(default = 0.0005)]
    pub reconstruction_weight: f64,
    /// Margin loss upper margin m+.
    #[config(default = 0.9)]
    pub m_plus: f64,
    /// Margin loss lower margin m-.
    #[config(default = 0.1)]
    pub m_minus: f64,
    /// Down-weighting of absent classes in the margin loss.
    #[config(default = 0.5)]
    pub lambda_: f64,
    /// Standard deviation of the normal initialisation of the class-capsule W.
    #[config(default = 0.1)]
    pub digit_init_std: f64,
    /// Per-channel mean subtracted from the [0, 1] input before conv1; empty: none.
    #[config(default = "vec![]")]
    pub input_mean: Vec<f64>,
    /// Per-channel standard deviation the input is divided by after the mean; empty: none.
    #[config(default = "vec![]")]
    pub input_std: Vec<f64>,
    /// CNN backbone before conv1 (`none`, `resnet` or `mobilenet`; see [`super::backbone`]).
    #[config(default = "BackboneKind::None")]
    pub backbone: BackboneKind,
    /// Width of each ResNet stage, or of the MobileNet stem and each block.
    #[config(default = "vec![]")]
    pub backbone_widths: Vec<usize>,
    /// Stride of each ResNet stage (its first block), or of the MobileNet stem and each
    /// block's depthwise convolution.
    #[config(default = "vec![]")]
    pub backbone_strides: Vec<usize>,
    /// Basic blocks per ResNet stage.
    #[config(default = 3)]
    pub backbone_depth: usize,
    /// Channels kept in each prunable group of a pruned backbone; empty: the dense widths.
    #[config(default = "vec![]")]
    pub backbone_channels: Vec<usize>,
}

/// Spatial sizes derived from a [`CapsNetConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// conv1 output height.
    pub conv1_h: usize,
    /// conv1 output width.
    pub conv1_w: usize,
    /// Primary capsule grid height (G for square inputs).
    pub grid_h: usize,
    /// Primary capsule grid width.
    pub grid_w: usize,
}

impl Geometry {
    /// Capsules per type (`grid_h * grid_w`).
    pub fn cells(&self) -> usize {
        self.grid_h * self.grid_w
    }
}

/// The part of [`ConfigError::InputTooSmall`]'s message naming the backbone's output.
fn backbone_note(backbone: &Option<(usize, usize)>) -> String {
    match backbone {
        Some((h, w)) => format!(" (the backbone's output {h}x{w})"),
        None => String::new(),
    }
}

/// Why a configuration cannot build a model.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The input (or the backbone's output feature map) is too small for the kernels.
    #[error("input {h}x{w}{} is too small for conv1 kernel {k1} and primary kernel {k2}", backbone_note(.backbone))]
    InputTooSmall {
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// The backbone's output height and width, where a backbone shrinks the input.
        backbone: Option<(usize, usize)>,
        /// conv1 kernel.
        k1: usize,
        /// primary kernel.
        k2: usize,
    },
    /// A field is outside the range this program can run.
    #[error("config field `{field}` is {value}, outside {range} ({reason})")]
    Range {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The allowed range.
        range: String,
        /// Why the range is what it is.
        reason: &'static str,
    },
    /// A product of sizes does not fit a machine word.
    #[error("config sizes overflow when computing the {0}")]
    Overflow(&'static str),
    /// The model would need more memory than allowed.
    #[error("the model needs {needed} {what}, more than the {limit} allowed")]
    Budget {
        /// What is counted.
        what: &'static str,
        /// How many are needed.
        needed: usize,
        /// The budget.
        limit: usize,
    },
    /// A batch would need more working memory than allowed.
    #[error(
        "a batch of {batch} images needs about {needed_mb} MiB of working memory, more than the {limit_mb} MiB allowed; use a smaller batch"
    )]
    BatchBudget {
        /// The batch size.
        batch: usize,
        /// Estimated need (MiB).
        needed_mb: usize,
        /// The budget (MiB).
        limit_mb: usize,
    },
}

impl CapsNetConfig {
    /// Checks the whole config (ranges, overflow, memory budget; see
    /// [`super::validate`]) and derives the feature-map geometry.
    pub fn geometry(&self) -> Result<Geometry, ConfigError> {
        let g = self.raw_geometry()?;
        self.footprint_of(g)?;
        Ok(g)
    }

    /// The feature-map geometry after the range check alone.
    pub(crate) fn raw_geometry(&self) -> Result<Geometry, ConfigError> {
        self.check_ranges()?;
        let reduced = plan(self)?.map(|p| (p.out_side(self.height), p.out_side(self.width)));
        let (h, w) = reduced.unwrap_or((self.height, self.width));
        let too_small = ConfigError::InputTooSmall {
            h: self.height,
            w: self.width,
            backbone: reduced,
            k1: self.conv1_kernel,
            k2: self.primary_kernel,
        };
        let conv1_h = h.checked_sub(self.conv1_kernel - 1).ok_or(too_small.clone())?;
        let conv1_w = w.checked_sub(self.conv1_kernel - 1).ok_or(too_small.clone())?;
        if conv1_h < self.primary_kernel || conv1_w < self.primary_kernel {
            return Err(too_small);
        }
        let grid_h = (conv1_h - self.primary_kernel) / self.primary_stride + 1;
        let grid_w = (conv1_w - self.primary_kernel) / self.primary_stride + 1;
        Ok(Geometry {
            conv1_h,
            conv1_w,
            grid_h,
            grid_w,
        })
    }

    /// Number of primary capsules N = T * grid cells (0 if the geometry is invalid).
    pub fn capsules(&self) -> usize {
        self.geometry().map(|g| self.types * g.cells()).unwrap_or(0)
    }

    /// Pixels of one input image (`in_channels * height * width`).
    pub fn pixels(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// The input image size as (channels, height, width).
    pub fn input(&self) -> (usize, usize, usize) {
        (self.in_channels, self.height, self.width)
    }

    /// The backbone's layers, `None` without a backbone (or with invalid backbone fields,
    /// which [`CapsNetConfig::geometry`] reports).
    pub fn backbone_plan(&self) -> Option<BackbonePlan> {
        plan(self).ok().flatten()
    }

    /// Input channels of conv1: the image's, or the backbone's output channels.
    pub fn conv1_inputs(&self) -> usize {
        self.backbone_plan()
            .map_or(self.in_channels, |p| p.out_channels())
    }

    /// Whether the reconstruction decoder is present.
    pub fn has_decoder(&self) -> bool {
        !self.decoder_hidden.is_empty()
    }

    /// Parses a config saved as JSON; fields it lacks (files written before a field
    /// existed) take their defaults, unknown fields are an error.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let given: serde_json::Value = serde_json::from_str(text)?;
        let mut merged = serde_json::to_value(CapsNetConfig::new())?;
        match (&mut merged, given) {
            (serde_json::Value::Object(base), serde_json::Value::Object(fields)) => {
                for (k, v) in fields {
                    if !base.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("unknown field `{k}`")));
                    }
                    base.insert(k, v);
                }
            }
            (_, other) => return serde_json::from_value(other),
        }
        serde_json::from_value(merged)
    }

    /// Whether the input is normalised per channel before conv1.
    pub fn normalises(&self) -> bool {
        !self.input_mean.is_empty()
    }

    /// Returns this config normalising its input with a dataset's per-channel `mean` and
    /// `std` (of [0, 1] pixels).
    pub fn with_normalisation(mut self, mean: Vec<f64>, std: Vec<f64>) -> Self {
        self.input_mean = mean;
        self.input_std = std;
        self
    }

    /// Returns this config with the input size of a dataset.
    pub fn for_input(mut self, channels: usize, height: usize, width: usize) -> Self {
        self.in_channels = channels;
        self.height = height;
        self.width = width;
        self
    }
}

/// The named model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The paper's CapsNet: C1=256, T=32 (1,152 capsules on 28x28), decoder 512/1024.
    Paper,
    /// A CPU-friendly CapsNet: C1=128, T=16 (576 capsules), decoder 256/512, default batch 32;
    /// one epoch of MNIST reaches >= 98.5% on a 2-core CPU in about 5 minutes.
    Small,
    /// A very small CapsNet for tests and demos: C1=64, T=8 (288 capsules), R=2, decoder
    /// 32/64, default batch 16.
    Tiny,
    /// A CapsNet head on a ResNet-20 backbone (stages 16/32/64, 3 basic blocks each, with
    /// BatchNorm): conv1 1x1 to 128, primary capsules 3x3 (32 types, 6x6 on 32x32 inputs),
    /// no decoder, default batch 64.
    ResnetCaps,
    /// A CapsNet head on a MobileNetV1-style backbone (stem 32, depthwise-separable blocks
    /// 64/128/128/256/256, strides 1/2/1/2/1): head as `resnet-caps`, default batch 64.
    MobilenetCaps,
}

impl Preset {
    /// All presets, in size order.
    pub const ALL: [Preset; 5] = [
        Preset::Paper,
        Preset::Small,
        Preset::Tiny,
        Preset::ResnetCaps,
        Preset::MobilenetCaps,
    ];

    /// The preset's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Small => "small",
            Preset::Tiny => "tiny",
            Preset::ResnetCaps => "resnet-caps",
            Preset::MobilenetCaps => "mobilenet-caps",
        }
    }

    /// Default training batch size of this preset (`--batch` overrides it).
    pub fn default_batch(self) -> usize {
        match self {
            Preset::Paper => 128,
            Preset::Small => 32,
            Preset::Tiny => 16,
            Preset::ResnetCaps | Preset::MobilenetCaps => 64,
        }
    }

    /// The preset's configuration for 28x28x1 inputs.
    pub fn config(self) -> CapsNetConfig {
        let base = CapsNetConfig::new();
        match self {
            Preset::Paper => base,
            Preset::Small => base
                .with_conv1_channels(128)
                .with_types(16)
                .with_decoder_hidden(vec![256, 512]),
            Preset::Tiny => base
                .with_conv1_channels(64)
                .with_types(8)
                .with_routing_iters(2)
                .with_decoder_hidden(vec![32, 64]),
            Preset::ResnetCaps => caps_head(base)
                .with_backbone(BackboneKind::Resnet)
                .with_backbone_widths(vec![16, 32, 64])
                .with_backbone_strides(vec![1, 2, 2])
                .with_backbone_depth(3),
            Preset::MobilenetCaps => caps_head(base)
                .with_backbone(BackboneKind::Mobilenet)
                .with_backbone_widths(vec![32, 64, 128, 128, 256, 256])
                .with_backbone_strides(vec![1, 1, 2, 1, 2, 1]),
        }
    }
}

/// The CapsNet head of the backbone presets: conv1 1x1 to 128 channels, primary capsules
/// 3x3 with stride 1 (32 types), no decoder.
fn caps_head(base: CapsNetConfig) -> CapsNetConfig {
    base.with_conv1_channels(128)
        .with_conv1_kernel(1)
        .with_primary_kernel(3)
        .with_primary_stride(1)
        .with_decoder_hidden(vec![])
}

serde_as_text!(Preset);

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown preset name.
#[derive(Debug, thiserror::Error)]
#[error("unknown preset '{0}' (expected paper, small, tiny, resnet-caps or mobilenet-caps)")]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPreset(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_saved_before_a_field_existed_still_load_and_unknown_fields_do_not() {
        let old = r#"{"in_channels":1,"height":28,"width":28,"conv1_channels":64,"types":8}"#;
        let c = CapsNetConfig::from_json(old).unwrap();
        assert_eq!((c.conv1_channels, c.types, c.class_dim), (64, 8, 16));
        assert!(!c.normalises());
        let saved = serde_json::to_string(&c.clone().with_normalisation(vec![0.5], vec![0.25])).unwrap();
        assert_eq!(CapsNetConfig::from_json(&saved).unwrap().input_std, vec![0.25]);
        let err = CapsNetConfig::from_json(r#"{"in_chanels":1}"#).unwrap_err();
        assert!(err.to_string().contains("in_chanels"), "{err}");
        assert!(CapsNetConfig::from_json("[1]").is_err());
    }

    #[test]
    fn paper_geometry_is_six_by_six_with_1152_capsules() {
        let c = Preset::Paper.config();
        let g = c.geometry().unwrap();
        assert_eq!((g.conv1_h, g.grid_h, g.grid_w), (20, 6, 6));
        assert_eq!(c.capsules(), 1152);
    }

    #[test]
    fn rgb_32_input_gives_eight_by_eight_grid() {
        let c = Preset::Tiny.config().for_input(3, 32, 32);
        assert_eq!(c.geometry().unwrap().grid_h, 8);
        assert_eq!(c.capsules(), c.types * 64);
    }

    #[test]
    fn too_small_input_is_an_error() {
        let c = Preset::Tiny.config().for_input(1, 12, 12);
        assert!(matches!(
            c.geometry(),
            Err(ConfigError::InputTooSmall { backbone: None, .. })
        ));
    }

    #[test]
    fn too_small_backbone_output_is_named() {
        // ResNet-20's strides 1, 2, 2 take 8x8 to 2x2, under the 3x3 primary kernel
        let c = Preset::ResnetCaps.config().for_input(3, 8, 8);
        let e = c.geometry().unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::InputTooSmall {
                    backbone: Some((2, 2)),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("input 8x8 (the backbone's output 2x2) is too small"),
            "{e}"
        );
    }

    #[test]
    fn backbone_fields_without_a_backbone_are_refused() {
        let c = Preset::Small.config().with_backbone_channels(vec![8, 8]);
        let e = c.geometry().unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Range {
                    field: "backbone_channels",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("`backbone` is none"), "{e}");
        assert!(Preset::Small.config().geometry().is_ok());
    }

    #[test]
    fn presets_parse_by_name() {
        assert_eq!("small".parse::<Preset>().unwrap(), Preset::Small);
        assert!("huge".parse::<Preset>().is_err());
    }
}
