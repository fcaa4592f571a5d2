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

pub use super::backbone_plan::{BackboneKind, BackbonePlan, BlockSpec, ConvSpec, plan};
use super::params::{HostTensor, ParamsError};
use super::{fast_bn, fast_conv};
use crate::rng::Rng;

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
    /// - `x`: `[B, in, H, W]` -> `[B, out, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[2];
        let (s, p) = (self.stride, k / 2);
        let y = if self.groups == 1 {
            fast_conv::conv2d(x, self.weight.val(), s, p)
        } else {
            conv2d(
                x,
                self.weight.val(),
                None,
                ConvOptions::new([s, s], [p, p], [1, 1], self.groups),
            )
        };
        fast_bn::batch_norm(&self.bn, y)
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
    fn from_named(
        spec: ConvSpec,
        prefix: &str,
        get: &mut impl FnMut(&str, Vec<usize>) -> Result<HostTensor, ParamsError>,
        device: &Device,
    ) -> Result<Self, ParamsError> {
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
        let var_name = format!("{prefix}.bn.var");
        let var = get(&var_name, vec![o])?;
        if let Some(index) = var.values.iter().position(|v| *v < 0.0) {
            // a negative variance would make BatchNorm's square root NaN
            return Err(ParamsError::Negative {
                name: var_name,
                index,
                value: var.values[index],
            });
        }
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
    /// `a`, ReLU, `b`, the shortcut added for a residual block, ReLU.
    ///
    /// # Shapes
    /// - `x`: `[B, in, H, W]` -> `[B, out, ceil(H / stride), ceil(W / stride)]`
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

    /// The stem with its ReLU, then every block.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]` -> `[B, out_channels, H', W']` ([`BackbonePlan::out_side`])
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
    pub fn from_named(
        plan: &BackbonePlan,
        mut get: impl FnMut(&str, Vec<usize>) -> Result<HostTensor, ParamsError>,
        device: &Device,
    ) -> Result<Self, ParamsError> {
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
    use crate::model::{ConfigError, Preset};

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
                let t = map.get(k).cloned().ok_or(ParamsError::Missing(k.to_string()))?;
                if t.shape == shape {
                    Ok(t)
                } else {
                    Err(ParamsError::Missing(k.to_string()))
                }
            },
            &dev,
        )
        .unwrap();
        let y2 = back.forward(x);
        let d = (y - y2).abs().max().into_scalar::<f32>();
        assert!(d < 1e-6, "{d}");
        // a negative variance (a hostile file) is refused instead of computing NaN
        let mut bad = map.clone();
        if let Some(var) = bad.get_mut("backbone.block2.a.bn.var") {
            var.values[3] = -0.5;
        }
        let err = Backbone::from_named(
            &p,
            |k, _| bad.get(k).cloned().ok_or(ParamsError::Missing(k.to_string())),
            &dev,
        );
        assert!(
            matches!(err, Err(ParamsError::Negative { ref name, index: 3, .. }) if name == "backbone.block2.a.bn.var")
        );
    }
}
