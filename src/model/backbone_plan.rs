//! The layers of a backbone, derived from the config alone: each convolution's channels,
//! kernel, stride and groups, the prunable channel groups, output size, receptive field and
//! multiply-adds (see [`super::backbone`] for the module that runs them).

use super::config::{CapsNetConfig, ConfigError};

/// Which backbone a network has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    /// No backbone: conv1 reads the image (the original CapsNet).
    #[default]
    None,
    /// CIFAR ResNet: a 3x3 stem, then stages of basic blocks (two 3x3 convolutions and a
    /// shortcut, a 1x1 convolution where the shape changes).
    Resnet,
    /// MobileNetV1: a 3x3 stem, then blocks of a 3x3 depthwise and a 1x1 pointwise
    /// convolution.
    Mobilenet,
}

/// One convolution of a backbone (3x3 convolutions are padded by 1, 1x1 by 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Kernel side (1 or 3).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Groups (the channel count for a depthwise convolution, else 1).
    pub groups: usize,
}

impl ConvSpec {
    fn new(inputs: usize, outputs: usize, kernel: usize, stride: usize) -> Self {
        Self {
            inputs,
            outputs,
            kernel,
            stride,
            groups: 1,
        }
    }

    /// Output side for an input side (padding `kernel / 2`).
    pub fn out_side(&self, side: usize) -> usize {
        (side + 2 * (self.kernel / 2) - self.kernel) / self.stride + 1
    }

    /// Weight shape `[outputs, inputs / groups, k, k]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.outputs,
            self.inputs / self.groups.max(1),
            self.kernel,
            self.kernel,
        ]
    }

    /// Multiply-adds for one image at input side `(h, w)`.
    pub fn macs(&self, (h, w): (usize, usize)) -> f64 {
        let [o, i, k, _] = self.weight_shape();
        (o * i * k * k) as f64 * (self.out_side(h) * self.out_side(w)) as f64
    }
}

/// One block: `a` then `b` (ResNet: both 3x3; MobileNet: depthwise then pointwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// First convolution.
    pub a: ConvSpec,
    /// Second convolution.
    pub b: ConvSpec,
    /// The 1x1 shortcut convolution of a ResNet block whose shape changes.
    pub shortcut: Option<ConvSpec>,
    /// Whether the block adds its input (ResNet) before the last ReLU.
    pub residual: bool,
}

/// Every layer of a backbone, derived from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackbonePlan {
    /// The kind.
    pub kind: BackboneKind,
    /// The stem convolution.
    pub stem: ConvSpec,
    /// The blocks in order.
    pub blocks: Vec<BlockSpec>,
    /// Dense width of each prunable channel group.
    pub dense_groups: Vec<usize>,
}

impl BackbonePlan {
    /// Output channels (conv1's input channels).
    pub fn out_channels(&self) -> usize {
        self.blocks.last().map_or(self.stem.outputs, |b| b.b.outputs)
    }

    /// Output side for an input side.
    pub fn out_side(&self, side: usize) -> usize {
        self.blocks
            .iter()
            .fold(self.stem.out_side(side), |s, b| b.b.out_side(b.a.out_side(s)))
    }

    /// Receptive field of the backbone's outputs along its main path: (side, jump, offset)
    /// in input pixels. Output `v`'s field starts at `v * jump - offset` (the padding makes
    /// the first fields start before the image).
    pub fn receptive(&self) -> (usize, usize, usize) {
        let grow = |(rf, jump, offset): (usize, usize, usize), c: &ConvSpec| {
            (
                rf + (c.kernel - 1) * jump,
                jump * c.stride,
                offset + (c.kernel / 2) * jump,
            )
        };
        self.blocks
            .iter()
            .fold(grow((1, 1, 0), &self.stem), |acc, b| grow(grow(acc, &b.a), &b.b))
    }

    /// Channels each prunable group has in this plan.
    pub fn groups(&self) -> Vec<usize> {
        match self.kind {
            BackboneKind::Resnet => self.blocks.iter().map(|b| b.a.outputs).collect(),
            _ => std::iter::once(self.stem.outputs)
                .chain(self.blocks.iter().map(|b| b.b.outputs))
                .collect(),
        }
    }

    /// Every convolution in order, with its name and its input side for one `(h, w)` image.
    pub fn convs(&self, (h, w): (usize, usize)) -> Vec<(String, ConvSpec, (usize, usize))> {
        let mut out = vec![("stem".to_string(), self.stem, (h, w))];
        let mut side = (self.stem.out_side(h), self.stem.out_side(w));
        for (i, b) in self.blocks.iter().enumerate() {
            out.push((format!("block{i}.a"), b.a, side));
            let mid = (b.a.out_side(side.0), b.a.out_side(side.1));
            out.push((format!("block{i}.b"), b.b, mid));
            if let Some(s) = b.shortcut {
                out.push((format!("block{i}.shortcut"), s, side));
            }
            side = (b.b.out_side(mid.0), b.b.out_side(mid.1));
        }
        out
    }

    /// Every convolution with its name and multiply-adds for one `(h, w)` image, in order.
    pub fn layer_macs(&self, size: (usize, usize)) -> Vec<(String, f64)> {
        self.convs(size)
            .into_iter()
            .map(|(name, conv, side)| (name, conv.macs(side)))
            .collect()
    }

    /// Multiply-adds of the whole backbone for one `(h, w)` image.
    pub fn macs(&self, size: (usize, usize)) -> f64 {
        self.layer_macs(size).iter().map(|(_, m)| m).sum()
    }
}

/// The backbone a config describes, `None` without one.
pub fn plan(c: &CapsNetConfig) -> Result<Option<BackbonePlan>, ConfigError> {
    let range = |field: &'static str, value: String, range: &str, reason: &'static str| ConfigError::Range {
        field,
        value,
        range: range.into(),
        reason,
    };
    if c.backbone == BackboneKind::None {
        // backbone fields without a backbone would be silently ignored: refuse them
        let set = [
            ("backbone_widths", c.backbone_widths.len()),
            ("backbone_strides", c.backbone_strides.len()),
            ("backbone_channels", c.backbone_channels.len()),
        ];
        return match set.into_iter().find(|(_, n)| *n > 0) {
            Some((field, n)) => Err(range(field, format!("{n} values"), "empty", "`backbone` is none")),
            None => Ok(None),
        };
    }
    let (widths, strides) = (&c.backbone_widths, &c.backbone_strides);
    if widths.is_empty() || widths.len() > MAX_STAGES || widths.len() != strides.len() {
        return Err(range(
            "backbone_widths",
            format!("{} widths and {} strides", widths.len(), strides.len()),
            &format!("1..={MAX_STAGES} of each"),
            "one width and one stride per stage or block",
        ));
    }
    if let Some(w) = widths.iter().find(|w| !(1..=MAX_WIDTH).contains(*w)) {
        return Err(range(
            "backbone_widths",
            w.to_string(),
            &format!("1..={MAX_WIDTH}"),
            "channels",
        ));
    }
    if let Some(s) = strides.iter().find(|s| !(1..=2).contains(*s)) {
        return Err(range("backbone_strides", s.to_string(), "1..=2", "stride"));
    }
    if !(1..=MAX_DEPTH).contains(&c.backbone_depth) {
        return Err(range(
            "backbone_depth",
            c.backbone_depth.to_string(),
            &format!("1..={MAX_DEPTH}"),
            "blocks per stage",
        ));
    }
    let mut p = match c.backbone {
        BackboneKind::Resnet => resnet(c),
        _ => mobilenet(c),
    };
    if !c.backbone_channels.is_empty() {
        let dense = &p.dense_groups;
        let fits = c.backbone_channels.len() == dense.len()
            && c.backbone_channels
                .iter()
                .zip(dense)
                .all(|(&k, &d)| (1..=d).contains(&k));
        if !fits {
            return Err(range(
                "backbone_channels",
                format!("{:?}", c.backbone_channels),
                &format!("{} counts, each 1..= its dense width {dense:?}", dense.len()),
                "channels kept per prunable group",
            ));
        }
        p = narrowed(p, &c.backbone_channels);
    }
    Ok(Some(p))
}

/// Most stages or blocks a backbone may have.
const MAX_STAGES: usize = 16;
/// Most blocks per ResNet stage.
const MAX_DEPTH: usize = 16;
/// Widest backbone layer.
const MAX_WIDTH: usize = 2048;

fn resnet(c: &CapsNetConfig) -> BackbonePlan {
    let stem = ConvSpec::new(c.in_channels, c.backbone_widths[0], 3, 1);
    let mut blocks = Vec::new();
    let mut width = stem.outputs;
    for (&w, &s) in c.backbone_widths.iter().zip(&c.backbone_strides) {
        for j in 0..c.backbone_depth {
            let stride = if j == 0 { s } else { 1 };
            let shortcut = (stride != 1 || width != w).then(|| ConvSpec::new(width, w, 1, stride));
            blocks.push(BlockSpec {
                a: ConvSpec::new(width, w, 3, stride),
                b: ConvSpec::new(w, w, 3, 1),
                shortcut,
                residual: true,
            });
            width = w;
        }
    }
    let dense_groups = blocks.iter().map(|b| b.a.outputs).collect();
    BackbonePlan {
        kind: BackboneKind::Resnet,
        stem,
        blocks,
        dense_groups,
    }
}

fn mobilenet(c: &CapsNetConfig) -> BackbonePlan {
    let (w, s) = (&c.backbone_widths, &c.backbone_strides);
    let stem = ConvSpec::new(c.in_channels, w[0], 3, s[0]);
    let blocks = (1..w.len())
        .map(|i| BlockSpec {
            a: ConvSpec {
                groups: w[i - 1],
                ..ConvSpec::new(w[i - 1], w[i - 1], 3, s[i])
            },
            b: ConvSpec::new(w[i - 1], w[i], 1, 1),
            shortcut: None,
            residual: false,
        })
        .collect();
    BackbonePlan {
        kind: BackboneKind::Mobilenet,
        stem,
        blocks,
        dense_groups: w.clone(),
    }
}

/// The plan with each group narrowed to `kept` channels.
fn narrowed(mut p: BackbonePlan, kept: &[usize]) -> BackbonePlan {
    match p.kind {
        BackboneKind::Resnet => {
            for (b, &k) in p.blocks.iter_mut().zip(kept) {
                b.a.outputs = k;
                b.b.inputs = k;
            }
        }
        _ => {
            p.stem.outputs = kept[0];
            for (i, b) in p.blocks.iter_mut().enumerate() {
                b.a.inputs = kept[i];
                b.a.outputs = kept[i];
                b.a.groups = kept[i];
                b.b.inputs = kept[i];
                b.b.outputs = kept[i + 1];
            }
        }
    }
    p
}
