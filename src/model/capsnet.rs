//! The CapsNet module: conv1, primary capsules, class capsules with dynamic routing,
//! and the reconstruction decoder.

use super::fast_conv;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use super::backbone::Backbone;
use super::config::{CapsNetConfig, ConfigError, Geometry};
use super::loss::{Margins, margin_loss, one_hot, reconstruction_loss};
use super::primary_conv::PrimaryConv;
use super::routing::{route, squash};
use crate::rng::Rng;

/// The capsule network. Prunable weights are `conv1_weight`, `primary_weight` and
/// `digit_weight`.
#[derive(Module, Debug)]
pub struct CapsNet {
    /// The CNN backbone before conv1 (`None` for the original CapsNet).
    pub backbone: Option<Backbone>,
    /// conv1 filters (conv1 reads the image, or the backbone's output).
    ///
    /// # Shapes
    /// `[C1, conv1_inputs, k1, k1]`
    pub conv1_weight: Param<Tensor<4>>,
    /// conv1 bias `[C1]`.
    pub conv1_bias: Param<Tensor<1>>,
    /// Primary-capsule filters; output channel `t * D + d` is dimension d of type t.
    ///
    /// # Shapes
    /// `[T * D, C1, k2, k2]`
    pub primary_weight: Param<Tensor<4>>,
    /// Primary-capsule bias `[T * D]`.
    pub primary_bias: Param<Tensor<1>>,
    /// Class-capsule transformation matrices, stored for a batched matmul over capsules.
    /// Element `[i, d, j * E + e]` is `W[i, j, e, d]` of the spec's `[N, J, E, D]` layout.
    ///
    /// # Shapes
    /// `[N, D, J * E]`
    pub digit_weight: Param<Tensor<3>>,
    /// Class-capsule bias `beta`.
    ///
    /// # Shapes
    /// `[J, E]`
    pub digit_bias: Param<Tensor<2>>,
    /// Decoder layers (empty when the decoder is off); burn layout, weights `[in, out]`.
    pub decoder: Vec<Linear>,
    /// The hyper-parameters (of the dense network, also when compacted).
    #[module(skip)]
    pub config: CapsNetConfig,
    /// What compaction removed; `None` for a dense network.
    #[module(skip)]
    pub compact: Option<Compaction>,
}

/// What a compact network keeps of its dense original.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compaction {
    /// Original indices of the conv1 channels kept.
    pub conv1_channels: Vec<usize>,
    /// Original indices of the capsule types whose primary filters are kept.
    pub live_types: Vec<usize>,
    /// Original index (`t * G * G + y * G + x`) of each capsule kept, ascending.
    pub capsules: Vec<usize>,
    /// Positions of the kept capsules among the live types' capsules; `None` when every
    /// capsule of the live types is kept.
    pub select: Option<Vec<usize>>,
}

/// Everything one forward pass computes.
#[derive(Debug, Clone)]
pub struct CapsOutput {
    /// conv1 activations (after ReLU), kept only when inspecting.
    ///
    /// # Shapes
    /// `[B, C1, H1, W1]`
    pub conv1: Option<Tensor<4>>,
    /// Squashed primary capsules, type-major (`i = t * G * G + y * G + x`).
    ///
    /// # Shapes
    /// `[B, N, D]`
    pub primary: Tensor<3>,
    /// Votes u_hat, class-major.
    ///
    /// # Shapes
    /// `[B, J, N, E]`
    pub votes: Tensor<4>,
    /// Coupling coefficients at the start of each routing iteration (only when inspecting).
    ///
    /// # Shapes
    /// `R` tensors of `[B, J, N]`
    pub coupling: Vec<Tensor<3>>,
    /// Class capsules v.
    ///
    /// # Shapes
    /// `[B, J, E]`
    pub class_caps: Tensor<3>,
    /// Class-capsule lengths (class probabilities).
    ///
    /// # Shapes
    /// `[B, J]`
    pub lengths: Tensor<2>,
}

/// The parts of the training loss.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Margin loss `[1]`.
    pub margin: Tensor<1>,
    /// Weighted reconstruction loss `[1]` (zero without a decoder).
    pub reconstruction: Tensor<1>,
    /// Sum of both `[1]`.
    pub total: Tensor<1>,
    /// Decoder output masked by the true label, `[B, P]`, if there is a decoder.
    pub recon_images: Option<Tensor<2>>,
}

impl CapsNet {
    /// A freshly initialised network. Convolutions and decoder layers use
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (PyTorch's default); W uses
    /// `N(0, digit_init_std)`; beta starts at 0.1. Initialisation depends on `seed` only.
    pub fn init(config: &CapsNetConfig, seed: u64, device: &Device) -> Result<Self, ConfigError> {
        let geo = config.geometry()?;
        let mut rng = Rng::new(seed);
        let c = config;
        let c0 = c.conv1_inputs();
        let n = c.types * geo.cells();
        let mut uniform = |shape: &[usize], fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..shape.iter().product::<usize>())
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        let k1 = c.conv1_kernel;
        let k2 = c.primary_kernel;
        let fan1 = c0 * k1 * k1;
        let fan2 = c.conv1_channels * k2 * k2;
        let conv1_w = uniform(&[c.conv1_channels, c0, k1, k1], fan1);
        let conv1_b = uniform(&[c.conv1_channels], fan1);
        let prim_w = uniform(&[c.types * c.primary_dim, c.conv1_channels, k2, k2], fan2);
        let prim_b = uniform(&[c.types * c.primary_dim], fan2);
        let mut decoder_layers = Vec::new();
        let mut d_in = c.classes * c.class_dim;
        let sizes: Vec<usize> = if c.has_decoder() {
            c.decoder_hidden.iter().copied().chain([c.pixels()]).collect()
        } else {
            Vec::new()
        };
        for &d_out in &sizes {
            let w = uniform(&[d_in, d_out], d_in);
            let b = uniform(&[d_out], d_in);
            decoder_layers.push((w, b, d_in, d_out));
            d_in = d_out;
        }
        let std = c.digit_init_std;
        let digit_w: Vec<f32> = (0..n * c.primary_dim * c.classes * c.class_dim)
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        // the backbone draws after the head, so a network without one initialises as before
        let backbone = c.backbone_plan().map(|p| Backbone::init(&p, &mut rng, device));
        let t = |v: Vec<f32>, s: Vec<usize>| TensorData::new(v, s);
        Ok(Self {
            backbone,
            conv1_weight: Param::from_data(t(conv1_w, vec![c.conv1_channels, c0, k1, k1]), device),
            conv1_bias: Param::from_data(t(conv1_b, vec![c.conv1_channels]), device),
            primary_weight: Param::from_data(
                t(prim_w, vec![c.types * c.primary_dim, c.conv1_channels, k2, k2]),
                device,
            ),
            primary_bias: Param::from_data(t(prim_b, vec![c.types * c.primary_dim]), device),
            digit_weight: Param::from_data(
                t(digit_w, vec![n, c.primary_dim, c.classes * c.class_dim]),
                device,
            ),
            digit_bias: Param::from_data(
                t(vec![0.1; c.classes * c.class_dim], vec![c.classes, c.class_dim]),
                device,
            ),
            decoder: decoder_layers
                .into_iter()
                .map(|(w, b, i, o)| linear_from(t(w, vec![i, o]), t(b, vec![o]), device))
                .collect(),
            config: c.clone(),
            compact: None,
        })
    }

    /// Feature-map geometry of this network.
    pub fn geometry(&self) -> Geometry {
        // The config was validated when the model was built.
        self.config.geometry().unwrap_or(Geometry {
            conv1_h: 0,
            conv1_w: 0,
            grid_h: 0,
            grid_w: 0,
        })
    }

    /// Number of primary capsules this network routes (N, or K once compacted).
    pub fn capsules(&self) -> usize {
        self.digit_weight.dims()[0]
    }

    /// Capsule types whose filters this network holds (T, or fewer once compacted).
    pub fn primary_types(&self) -> usize {
        self.primary_weight.dims()[0] / self.config.primary_dim.max(1)
    }

    /// Original (dense) index of each capsule this network routes.
    pub fn capsule_indices(&self) -> Vec<usize> {
        match &self.compact {
            Some(k) => k.capsules.clone(),
            None => (0..self.capsules()).collect(),
        }
    }

    /// Squashed primary capsules (and conv1 activations when `keep_conv1`).
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` in [0, 1]
    /// - returns `[B, N, D]` and optionally `[B, C1, H1, W1]`
    pub fn primary_caps(&self, images: Tensor<4>, keep_conv1: bool) -> (Tensor<3>, Option<Tensor<4>>) {
        let h = self.conv1(images);
        (self.primary_from_conv1(h.clone()), keep_conv1.then_some(h))
    }

    /// The backbone (if any), then conv1 and its ReLU.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` -> `[B, C1, H1, W1]`
    pub fn conv1(&self, images: Tensor<4>) -> Tensor<4> {
        let images = self.normalise(images);
        let features = match &self.backbone {
            Some(b) => b.forward(images),
            None => images,
        };
        relu(fast_conv::conv2d_bias(
            features,
            self.conv1_weight.val(),
            self.conv1_bias.val(),
            1,
            0,
        ))
    }

    /// Subtracts the config's per-channel mean and divides by its std (if it has them).
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` -> `[B, C, H, W]`
    pub fn normalise(&self, images: Tensor<4>) -> Tensor<4> {
        let c = &self.config;
        if !c.normalises() {
            return images;
        }
        let device = images.device();
        let channel = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [c.in_channels]), &device).reshape([
                1,
                c.in_channels,
                1,
                1,
            ])
        };
        (images - channel(&c.input_mean)) / channel(&c.input_std)
    }

    /// Squashed primary capsules from conv1's activations.
    ///
    /// # Shapes
    /// - `h`: `[B, C1, H1, W1]` -> `[B, N, D]`
    pub fn primary_from_conv1(&self, h: Tensor<4>) -> Tensor<3> {
        let c = &self.config;
        let [b, _, _, _] = h.dims();
        let device = h.device();
        let p = self.primary_conv(h, PrimaryConv::choose(b, &device));
        let [_, _, gh, gw] = p.dims();
        let d = c.primary_dim;
        let types = self.primary_types();
        let u = p
            .reshape([b, types, d, gh * gw])
            .swap_dims(2, 3)
            .reshape([b, types * gh * gw, d]);
        let u = match self.compact.as_ref().and_then(|k| k.select.as_ref()) {
            Some(select) => {
                let idx: Vec<i64> = select.iter().map(|&i| i as i64).collect();
                let n = idx.len();
                u.select(1, Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device))
            }
            None => u,
        };
        squash(u)
    }

    /// Votes u_hat of every primary capsule for every class.
    ///
    /// # Shapes
    /// - `primary`: `[B, N, D]` -> `[B, J, N, E]`
    pub fn votes(&self, primary: Tensor<3>) -> Tensor<4> {
        let [b, n, _] = primary.dims();
        let (j, e) = (self.config.classes, self.config.class_dim);
        // [N, B, D] @ [N, D, J*E] -> [N, B, J*E]
        primary
            .swap_dims(0, 1)
            .matmul(self.digit_weight.val())
            .reshape([n, b, j, e])
            .permute([1, 2, 0, 3])
    }

    /// The full forward pass. With `inspect`, conv1 activations and the coupling
    /// coefficients of every routing iteration are kept too.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` in [0, 1]
    pub fn forward(&self, images: Tensor<4>, inspect: bool) -> CapsOutput {
        let (primary, conv1) = self.primary_caps(images, inspect);
        let votes = self.votes(primary.clone());
        CapsOutput {
            conv1,
            ..self.route_votes(primary, votes, inspect)
        }
    }

    /// Routing of the votes to the class capsules and their lengths (the forward pass after
    /// the votes; `conv1` is left empty). With `keep_coupling`, the coupling coefficients of
    /// every iteration are kept.
    ///
    /// # Shapes
    /// - `primary`: `[B, N, D]`, `votes`: `[B, J, N, E]`
    pub fn route_votes(&self, primary: Tensor<3>, votes: Tensor<4>, keep_coupling: bool) -> CapsOutput {
        let routed = route(
            votes.clone(),
            self.digit_bias.val(),
            self.config.routing_iters,
            keep_coupling,
        );
        let lengths = routed
            .class_caps
            .clone()
            .square()
            .sum_dim(2)
            .sqrt()
            .squeeze_dim::<2>(2);
        CapsOutput {
            conv1: None,
            primary,
            votes,
            coupling: routed.coupling,
            class_caps: routed.class_caps,
            lengths,
        }
    }

    /// Decoder output from the class capsules masked by `mask` (one-hot of the true class
    /// in training, of the longest capsule at inference). `None` without a decoder.
    ///
    /// # Shapes
    /// - `class_caps`: `[B, J, E]`, `mask`: `[B, J]` -> `[B, P]` in (0, 1)
    pub fn reconstruct(&self, class_caps: Tensor<3>, mask: Tensor<2>) -> Option<Tensor<2>> {
        if self.decoder.is_empty() {
            return None;
        }
        let [b, j, e] = class_caps.dims();
        let mut x = (class_caps * mask.unsqueeze_dim::<3>(2)).reshape([b, j * e]);
        let last = self.decoder.len() - 1;
        for (i, layer) in self.decoder.iter().enumerate() {
            x = layer.forward(x);
            x = if i == last { sigmoid(x) } else { relu(x) };
        }
        Some(x)
    }

    /// Inference with everything the app shows: the forward pass with inspection data and
    /// the reconstruction from the longest class capsule (the prediction).
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]`; the reconstruction is `[B, P]`
    pub fn inspect(&self, images: Tensor<4>) -> (CapsOutput, Option<Tensor<2>>) {
        let out = self.forward(images, true);
        let [b, _] = out.lengths.dims();
        let winner = out.lengths.clone().argmax(1).reshape([b]);
        let mask = one_hot(winner, self.config.classes);
        let recon = self.reconstruct(out.class_caps.clone(), mask);
        (out, recon)
    }

    /// Training loss: margin loss plus the weighted reconstruction loss (decoder masked by the
    /// true labels).
    ///
    /// # Shapes
    /// - `out`: a forward pass over `images` `[B, C, H, W]`; `labels`: `[B]`
    pub fn loss(&self, out: &CapsOutput, images: Tensor<4>, labels: Tensor<1, Int>) -> LossParts {
        let c = &self.config;
        let targets = one_hot(labels, c.classes);
        let margins = Margins {
            m_plus: c.m_plus,
            m_minus: c.m_minus,
            lambda: c.lambda_,
        };
        let margin = margin_loss(out.lengths.clone(), targets.clone(), margins);
        match self.reconstruct(out.class_caps.clone(), targets) {
            Some(recon) => {
                let [b, ..] = images.dims();
                let flat = images.reshape([b, c.pixels()]);
                let rl = reconstruction_loss(flat, recon.clone(), c.reconstruction_weight);
                LossParts {
                    total: margin.clone() + rl.clone(),
                    margin,
                    reconstruction: rl,
                    recon_images: Some(recon),
                }
            }
            None => LossParts {
                total: margin.clone(),
                reconstruction: margin.zeros_like(),
                margin,
                recon_images: None,
            },
        }
    }

    /// Number of scalar parameters (BatchNorm's running statistics are buffers, not counted).
    pub fn param_count(&self) -> usize {
        let buffers = self.backbone.as_ref().map_or(0, |b| 2 * b.bn_channels());
        self.num_params() - buffers
    }
}

/// A burn `Linear` from weight `[in, out]` and bias `[out]`.
pub(crate) fn linear_from(weight: TensorData, bias: TensorData, device: &Device) -> Linear {
    Linear {
        weight: Param::from_data(weight, device),
        bias: Some(Param::from_data(bias, device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn inspect_returns_every_intermediate_with_the_right_shapes() {
        let dev = Device::flex();
        let cfg = Preset::Tiny.config();
        let net = CapsNet::init(&cfg, 1, &dev).unwrap();
        let x = Tensor::<4>::ones([2, 1, 28, 28], &dev) * 0.5;
        let (out, recon) = net.inspect(x);
        let n = cfg.capsules();
        assert_eq!(out.conv1.unwrap().dims(), [2, cfg.conv1_channels, 20, 20]);
        assert_eq!(out.primary.dims(), [2, n, 8]);
        assert_eq!(out.votes.dims(), [2, 10, n, 16]);
        assert_eq!(out.coupling.len(), cfg.routing_iters);
        assert_eq!(out.coupling[0].dims(), [2, 10, n]);
        assert_eq!(out.class_caps.dims(), [2, 10, 16]);
        assert_eq!(recon.unwrap().dims(), [2, 784]);
        let lengths = out.lengths.into_data().try_into_vec_as::<f32>().unwrap();
        assert!(lengths.iter().all(|l| (0.0..1.0).contains(l)));
    }

    #[test]
    fn rgb_inputs_work_and_the_decoder_can_be_off() {
        let dev = Device::flex();
        let cfg = Preset::Tiny
            .config()
            .for_input(3, 32, 32)
            .with_decoder_hidden(vec![]);
        let net = CapsNet::init(&cfg, 1, &dev).unwrap();
        let x = Tensor::<4>::zeros([1, 3, 32, 32], &dev);
        let out = net.forward(x.clone(), false);
        assert_eq!(out.primary.dims(), [1, 8 * 64, 8]);
        let labels = Tensor::<1, Int>::from_ints([3], &dev);
        let parts = net.loss(&out, x, labels);
        assert!(parts.recon_images.is_none());
        assert_eq!(parts.reconstruction.into_scalar::<f32>(), 0.0);
    }
}
