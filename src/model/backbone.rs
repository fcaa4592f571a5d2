//! CNN backbones before the CapsNet head: a CIFAR ResNet (basic blocks) and a
//! MobileNetV1-style stack of depthwise-separable blocks, every convolution followed by
//! BatchNorm. The backbone replaces the image as conv1's input; conv1, the primary
//! capsules and the class capsules follow as in the original CapsNet.
//!
//! A backbone is described by the config alone ([`plan`]): its kind, the width and stride
//! of each stage (ResNet) or block (MobileNet), the blocks per ResNet stage and, once pruned,
//! the channels each prunable group keeps. A pruned backbone is a narrower backbone: its
//! model file needs no compaction record.
//!
//! Prunable channel groups ([`BackbonePlan::groups`]):
//! - ResNet: the inner channels of each basic block (the first convolution's outputs). The
//!   residual stream keeps its width, so the additions stay consistent.
//! - MobileNet: the output channels of the stem and of each pointwise convolution, together
//!   with the depthwise convolution that reads them (the last group is conv1's input).

use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::config::{CapsNetConfig, ConfigError};
use super::params::HostTensor;
use crate::rng::Rng;

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

    /// Receptive field side and jump (input pixels between neighbouring outputs) of the
    /// backbone's output, along its main path.
    pub fn receptive(&self) -> (usize, usize) {
        let grow = |(rf, jump): (usize, usize), c: &ConvSpec| (rf + (c.kernel - 1) * jump, jump * c.stride);
        self.blocks
            .iter()
            .fold(grow((1, 1), &self.stem), |acc, b| grow(grow(acc, &b.a), &b.b))
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

    /// Every convolution with its name and multiply-adds for one `(h, w)` image, in order.
    pub fn layer_macs(&self, (h, w): (usize, usize)) -> Vec<(String, f64)> {
        let mut out = vec![("stem".to_string(), self.stem.macs((h, w)))];
        let mut side = (self.stem.out_side(h), self.stem.out_side(w));
        for (i, b) in self.blocks.iter().enumerate() {
            out.push((format!("block{i}.a"), b.a.macs(side)));
            let mid = (b.a.out_side(side.0), b.a.out_side(side.1));
            out.push((format!("block{i}.b"), b.b.macs(mid)));
            if let Some(s) = b.shortcut {
                out.push((format!("block{i}.shortcut"), s.macs(side)));
            }
            side = mid;
        }
        out
    }

    /// Multiply-adds of the whole backbone for one `(h, w)` image.
    pub fn macs(&self, size: (usize, usize)) -> f64 {
        self.layer_macs(size).iter().map(|(_, m)| m).sum()
    }
}

/// The backbone a config describes, `None` without one.
pub fn plan(c: &CapsNetConfig) -> Result<Option<BackbonePlan>, ConfigError> {
    if c.backbone == BackboneKind::None {
        return Ok(None);
    }
    let range = |field: &'static str, value: String, range: &str, reason: &'static str| ConfigError::Range {
        field,
        value,
        range: range.into(),
        reason,
    };
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

/// A convolution without bias followed by BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// Filters.
    ///
    /// # Shapes
    /// `[out, in / groups, k, k]`
    pub weight: Param<Tensor<4>>,
    /// The BatchNorm after the convolution (scale, shift and running statistics).
    pub bn: BatchNorm,
    /// Stride.
    #[module(skip)]
    pub stride: usize,
    /// Groups.
    #[module(skip)]
    pub groups: usize,
}

impl ConvBn {
    fn init(spec: ConvSpec, rng: &mut Rng, device: &Device) -> Self {
        let shape = spec.weight_shape();
        let fan_in = shape[1] * shape[2] * shape[3];
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        Self {
            weight: Param::from_data(TensorData::new(values, shape), device),
            bn: BatchNormConfig::new(spec.outputs).init(device),
            stride: spec.stride,
            groups: spec.groups,
        }
    }

    /// Convolution then BatchNorm (training statistics on an autodiff device).
    ///
    /// # Shapes
    /// - `x`: `[B, in, H, W]` -> `[B, out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[2];
        let (s, p) = (self.stride, k / 2);
        let y = conv2d(
            x,
            self.weight.val(),
            None,
            ConvOptions::new([s, s], [p, p], [1, 1], self.groups),
        );
        self.bn.forward(y)
    }

    /// The BatchNorm modules' running statistics as host tensors (mean, var).
    pub fn stats(&self) -> (HostTensor, HostTensor) {
        let mean = Module::valid(&self.bn.running_mean).value();
        let var = Module::valid(&self.bn.running_var).value();
        (HostTensor::from_tensor(mean), HostTensor::from_tensor(var))
    }

    fn named(&self, prefix: &str, out: &mut Vec<(String, HostTensor)>) {
        let (mean, var) = self.stats();
        out.push((
            format!("{prefix}.weight"),
            HostTensor::from_tensor(self.weight.val()),
        ));
        out.push((
            format!("{prefix}.bn.gamma"),
            HostTensor::from_tensor(self.bn.gamma.val()),
        ));
        out.push((
            format!("{prefix}.bn.beta"),
            HostTensor::from_tensor(self.bn.beta.val()),
        ));
        out.push((format!("{prefix}.bn.mean"), mean));
        out.push((format!("{prefix}.bn.var"), var));
    }

    /// Builds the layer from `get(name, shape)`, which checks each tensor's shape.
    fn from_named<E>(
        spec: ConvSpec,
        prefix: &str,
        get: &mut impl FnMut(&str, Vec<usize>) -> Result<HostTensor, E>,
        device: &Device,
    ) -> Result<Self, E> {
        let o = spec.outputs;
        let w = get(&format!("{prefix}.weight"), spec.weight_shape().to_vec())?;
        let mut layer = Self {
            weight: Param::from_data(TensorData::new(w.values, w.shape), device),
            bn: BatchNormConfig::new(o).init(device),
            stride: spec.stride,
            groups: spec.groups,
        };
        let gamma = get(&format!("{prefix}.bn.gamma"), vec![o])?;
        let beta = get(&format!("{prefix}.bn.beta"), vec![o])?;
        let mean = get(&format!("{prefix}.bn.mean"), vec![o])?;
        let var = get(&format!("{prefix}.bn.var"), vec![o])?;
        layer.bn.gamma = Param::from_data(TensorData::new(gamma.values, [o]), device);
        layer.bn.beta = Param::from_data(TensorData::new(beta.values, [o]), device);
        layer.bn.running_mean = burn::module::RunningState::new(mean.to_tensor(device));
        layer.bn.running_var = burn::module::RunningState::new(var.to_tensor(device));
        Ok(layer)
    }

    fn params(&mut self) -> [&mut burn::module::ParamId; 3] {
        [&mut self.weight.id, &mut self.bn.gamma.id, &mut self.bn.beta.id]
    }
}

/// One block of a backbone.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution (ResNet 3x3, MobileNet depthwise).
    pub a: ConvBn,
    /// Second convolution (ResNet 3x3, MobileNet pointwise).
    pub b: ConvBn,
    /// The shortcut convolution of a ResNet block whose shape changes.
    pub shortcut: Option<ConvBn>,
    /// Whether the block is residual.
    #[module(skip)]
    pub residual: bool,
}

impl Block {
    /// # Shapes
    /// - `x`: `[B, in, H, W]` -> `[B, out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.b.forward(relu(self.a.forward(x.clone())));
        if !self.residual {
            return relu(y);
        }
        let skip = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        relu(y + skip)
    }

    fn layers_mut(&mut self) -> Vec<&mut ConvBn> {
        let mut v = vec![&mut self.a, &mut self.b];
        if let Some(s) = &mut self.shortcut {
            v.push(s);
        }
        v
    }
}

/// A CNN backbone: the stem and the blocks.
#[derive(Module, Debug)]
pub struct Backbone {
    /// The stem convolution.
    pub stem: ConvBn,
    /// The blocks.
    pub blocks: Vec<Block>,
}

impl Backbone {
    /// A freshly initialised backbone of `plan` (PyTorch's default convolution
    /// initialisation; BatchNorm scale 1, shift 0).
    pub fn init(plan: &BackbonePlan, rng: &mut Rng, device: &Device) -> Self {
        let stem = ConvBn::init(plan.stem, rng, device);
        let blocks = plan
            .blocks
            .iter()
            .map(|b| Block {
                a: ConvBn::init(b.a, rng, device),
                b: ConvBn::init(b.b, rng, device),
                shortcut: b.shortcut.map(|s| ConvBn::init(s, rng, device)),
                residual: b.residual,
            })
            .collect();
        Self { stem, blocks }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> `[B, out_channels, H', W']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.stem.forward(x));
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }

    /// Every convolution + BatchNorm layer, in the order of [`BackbonePlan::layer_macs`].
    pub fn layers_mut(&mut self) -> Vec<&mut ConvBn> {
        let mut v = vec![&mut self.stem];
        for b in &mut self.blocks {
            v.extend(b.layers_mut());
        }
        v
    }

    /// Parameters and BatchNorm statistics as named host tensors (`backbone.stem.weight`,
    /// `backbone.block0.a.bn.gamma`, ...).
    pub fn to_named(&self, out: &mut Vec<(String, HostTensor)>) {
        self.stem.named("backbone.stem", out);
        for (i, b) in self.blocks.iter().enumerate() {
            b.a.named(&format!("backbone.block{i}.a"), out);
            b.b.named(&format!("backbone.block{i}.b"), out);
            if let Some(s) = &b.shortcut {
                s.named(&format!("backbone.block{i}.shortcut"), out);
            }
        }
    }

    /// Builds the backbone of `plan` from named tensors; `get(name, shape)` fetches and
    /// checks each.
    pub fn from_named<E>(
        plan: &BackbonePlan,
        mut get: impl FnMut(&str, Vec<usize>) -> Result<HostTensor, E>,
        device: &Device,
    ) -> Result<Self, E> {
        let stem = ConvBn::from_named(plan.stem, "backbone.stem", &mut get, device)?;
        let mut blocks = Vec::with_capacity(plan.blocks.len());
        for (i, b) in plan.blocks.iter().enumerate() {
            let name = |part: &str| format!("backbone.block{i}.{part}");
            let shortcut = match b.shortcut {
                Some(s) => Some(ConvBn::from_named(s, &name("shortcut"), &mut get, device)?),
                None => None,
            };
            blocks.push(Block {
                a: ConvBn::from_named(b.a, &name("a"), &mut get, device)?,
                b: ConvBn::from_named(b.b, &name("b"), &mut get, device)?,
                shortcut,
                residual: b.residual,
            });
        }
        Ok(Self { stem, blocks })
    }

    /// Every convolution + BatchNorm layer, in the order of [`Backbone::layers_mut`].
    pub fn layers(&self) -> Vec<&ConvBn> {
        let mut v = vec![&self.stem];
        for b in &self.blocks {
            v.extend([&b.a, &b.b]);
            v.extend(b.shortcut.as_ref());
        }
        v
    }

    /// BatchNorm channels in all (each has a running mean and variance, buffers that
    /// burn's parameter count includes).
    pub fn bn_channels(&self) -> usize {
        self.layers().iter().map(|l| l.bn.gamma.dims()[0]).sum()
    }

    /// Ids of the trainable parameters (each layer's weight, BatchNorm scale and shift).
    pub fn param_ids(&self) -> Vec<u64> {
        self.layers()
            .into_iter()
            .flat_map(|l| [l.weight.id.val(), l.bn.gamma.id.val(), l.bn.beta.id.val()])
            .collect()
    }

    /// Sets the ids in [`Backbone::param_ids`] order from `next`.
    pub fn set_param_ids(&mut self, next: &mut impl FnMut() -> burn::module::ParamId) {
        for layer in self.layers_mut() {
            for id in layer.params() {
                *id = next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn resnet_plan_has_shortcuts_where_the_shape_changes_and_counts_flops() {
        let c = Preset::ResnetCaps.config().for_input(3, 32, 32);
        let p = plan(&c).unwrap().unwrap();
        assert_eq!(p.blocks.len(), 9);
        assert_eq!(p.blocks.iter().filter(|b| b.shortcut.is_some()).count(), 2);
        assert_eq!((p.out_channels(), p.out_side(32)), (64, 8));
        // ResNet-20's convolutions: about 41 M multiply-adds on 32x32
        let m = p.macs((32, 32)) / 1e6;
        assert!((40.0..42.0).contains(&m), "{m}");
    }

    #[test]
    fn narrowed_mobilenet_keeps_depthwise_groups_equal_to_channels() {
        let c = Preset::MobilenetCaps.config().for_input(3, 32, 32);
        let dense = plan(&c).unwrap().unwrap();
        let kept: Vec<usize> = dense.dense_groups.iter().map(|w| w / 2).collect();
        let p = plan(&c.clone().with_backbone_channels(kept.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(p.groups(), kept);
        assert!(
            p.blocks
                .iter()
                .all(|b| b.a.groups == b.a.inputs && b.a.inputs == b.b.inputs)
        );
        assert_eq!(p.out_channels(), *kept.last().unwrap());
        let bad = c.with_backbone_channels(vec![1]);
        assert!(matches!(
            plan(&bad),
            Err(ConfigError::Range {
                field: "backbone_channels",
                ..
            })
        ));
    }

    #[test]
    fn forward_shapes_and_named_round_trip() {
        let dev = Device::flex();
        let c = Preset::MobilenetCaps.config().for_input(3, 16, 16);
        let p = plan(&c).unwrap().unwrap();
        let net = Backbone::init(&p, &mut Rng::new(3), &dev);
        let x = Tensor::<4>::ones([2, 3, 16, 16], &dev);
        let y = net.forward(x.clone());
        assert_eq!(y.dims(), [2, p.out_channels(), p.out_side(16), p.out_side(16)]);
        let mut named = Vec::new();
        net.to_named(&mut named);
        let map: std::collections::HashMap<_, _> = named.iter().cloned().collect();
        let back = Backbone::from_named(
            &p,
            |k, shape| {
                let t = map.get(k).cloned().ok_or(k.to_string())?;
                if t.shape == shape {
                    Ok(t)
                } else {
                    Err(k.to_string())
                }
            },
            &dev,
        )
        .unwrap();
        let y2 = back.forward(x);
        let d = (y - y2).abs().max().into_scalar::<f32>();
        assert!(d < 1e-6, "{d}");
    }
}
