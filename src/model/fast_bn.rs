//! BatchNorm's training step on the CPU in two passes forward and two backward.
//!
//! burn 0.22 computes a training BatchNorm out of generic tensor operations: the batch
//! statistics transpose the activation twice, and forward and backward take about a dozen
//! passes over it. For the small, wide activations of a CIFAR backbone that was about 15% of
//! a training step. Here the statistics, the normalisation and the gradients are each one
//! loop over the activation. On any other device, without autodiff, or for a frozen layer,
//! [`batch_norm`] is burn's `BatchNorm::forward`.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::DType;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::par_fill::par_filled;

/// Training-mode BatchNorm as a backend extension, so that autodiff on flex carries its own
/// backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait FastBatchNorm: Backend {
    /// Per-channel mean and biased variance of `x` (no gradient).
    ///
    /// # Shapes
    /// - `x`: `[B, C, ...]` -> `[2, C]` (row 0 the means, row 1 the variances)
    fn bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − mean) / sqrt(var + epsilon) · gamma + beta` with `stats` from [`bn_stats`] of
    /// the same `x`; its gradient is the training-mode one (the statistics depend on `x`).
    ///
    /// # Shapes
    /// - `x`: `[B, C, ...]`, `gamma`, `beta`: `[C]`, `stats`: `[2, C]` -> `[B, C, ...]`
    fn bn_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// `[B, C, S]`: batch, channels and the values per channel plane.
fn planes(x: &FlexTensor) -> [usize; 3] {
    let shape = x.layout().shape();
    let (batch, channels) = (shape[0], shape[1]);
    let total: usize = (0..shape.num_dims()).map(|d| shape[d]).product();
    [batch, channels, total / (batch * channels).max(1)]
}

fn host(t: &FlexTensor) -> Vec<f32> {
    t.to_contiguous().storage::<f32>().to_vec()
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The sum of `f(0..n)` in eight f32 lanes (vectorisable, and more accurate than one
/// running sum), added up in f64.
fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(i + l);
        }
    }
    let tail: f64 = (full..n).map(|i| f(i) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// Per channel: `1 / sqrt(var + epsilon)`.
fn inv_std(stats: &[f32], channels: usize, epsilon: f64) -> Vec<f32> {
    stats[channels..2 * channels]
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

impl FastBatchNorm for Flex {
    fn bn_stats(x: FlexTensor) -> FlexTensor {
        let [batch, channels, plane] = planes(&x);
        let x = x.to_contiguous();
        let values = x.storage::<f32>();
        let count = (batch * plane) as f64;
        // per plane its mean and its sum of squared deviations, merged in f64 (Chan et
        // al.): no cancellation when a channel's mean is large against its spread
        let per_channel: Vec<(f32, f32)> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let parts: Vec<(f64, f64)> = (0..batch)
                    .map(|b| {
                        let p = &values[(b * channels + c) * plane..][..plane];
                        let mean = lane_sum(p.len(), |i| p[i]) / plane as f64;
                        let m = mean as f32;
                        let squares = lane_sum(p.len(), |i| (p[i] - m) * (p[i] - m));
                        (mean, squares)
                    })
                    .collect();
                let mean = parts.iter().map(|p| p.0).sum::<f64>() / batch as f64;
                let squares: f64 = parts
                    .iter()
                    .map(|&(m, q)| q + plane as f64 * (m - mean) * (m - mean))
                    .sum();
                (mean as f32, (squares / count) as f32)
            })
            .collect();
        let mut out: Vec<f32> = per_channel.iter().map(|m| m.0).collect();
        out.extend(per_channel.iter().map(|m| m.1));
        tensor(out, vec![2, channels])
    }

    fn bn_apply(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let [_, channels, plane] = planes(&x);
        let stats = host(&stats);
        let (gamma, beta) = (host(&gamma), host(&beta));
        let inv = inv_std(&stats, channels, epsilon);
        let scale: Vec<f32> = (0..channels).map(|c| gamma[c] * inv[c]).collect();
        let shape: Vec<usize> = x.layout().shape().iter().copied().collect();
        let x = x.to_contiguous();
        let xs = x.storage::<f32>();
        let fill = |i: usize, out: &mut [MaybeUninit<f32>]| {
            let c = i % channels;
            // centred first: a tiny variance makes the scale large
            let (mean, a, b) = (stats[c], scale[c], beta[c]);
            // the slice has exactly the chunk's length (it panics otherwise), so the zip
            // writes every value
            let len = out.len();
            for (o, &v) in out.iter_mut().zip(&xs[i * plane..][..len]) {
                o.write((v - mean) * a + b);
            }
        };
        // SAFETY: the buffer has x's length and chunk i is x's plane at i · plane, which
        // `fill` writes value by value over the chunk's whole length
        let out = unsafe { par_filled(xs.len(), plane, fill) };
        tensor(out, shape)
    }
}

/// Gradients of training-mode BatchNorm: `(x, gamma, beta)`.
///
/// # Shapes
/// - `x`, `grad`: `[B, C, ...]`, `gamma`: `[C]`, `stats`: `[2, C]`
fn bn_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    stats: FlexTensor,
    epsilon: f64,
    grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [batch, channels, plane] = planes(&x);
    let shape: Vec<usize> = x.layout().shape().iter().copied().collect();
    let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
    let (xs, gs) = (x.storage::<f32>(), grad.storage::<f32>());
    let stats = host(&stats);
    let gamma = host(&gamma);
    let inv = inv_std(&stats, channels, epsilon);
    // per channel: sum of the output gradient, and of it times the normalised input
    let sums: Vec<(f32, f32)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (mean, inv) = (stats[c], inv[c]);
            let (mut dy, mut dy_xhat) = (0f64, 0f64);
            for b in 0..batch {
                let at = (b * channels + c) * plane;
                let (xp, gp) = (&xs[at..at + plane], &gs[at..at + plane]);
                dy += lane_sum(plane, |i| gp[i]);
                dy_xhat += lane_sum(plane, |i| gp[i] * (xp[i] - mean)) * inv as f64;
            }
            (dy as f32, dy_xhat as f32)
        })
        .collect();
    let count = (batch * plane) as f32;
    let fill = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let c = i % channels;
        let (mean, inv) = (stats[c], inv[c]);
        let (sum_dy, sum_dy_xhat) = sums[c];
        let (mean_dy, mean_dy_xhat) = (sum_dy / count, sum_dy_xhat / count);
        let scale = gamma[c] * inv;
        let at = i * plane;
        for ((o, &x), &g) in out.iter_mut().zip(&xs[at..at + plane]).zip(&gs[at..at + plane]) {
            let xhat = (x - mean) * inv;
            o.write(scale * (g - mean_dy - xhat * mean_dy_xhat));
        }
    };
    // SAFETY: chunk i is the plane at i · plane (x and the gradient have the same shape),
    // which `fill` writes value by value
    let dx = unsafe { par_filled(xs.len(), plane, fill) };
    let gamma_grad = sums.iter().map(|s| s.1).collect();
    let beta_grad = sums.iter().map(|s| s.0).collect();
    (
        tensor(dx, shape),
        tensor(gamma_grad, vec![channels]),
        tensor(beta_grad, vec![channels]),
    )
}

/// The backward pass of [`FastBatchNorm::bn_apply`] on flex autodiff.
#[derive(Debug)]
struct BnApplyBackward;

impl Backward<Flex, 3> for BnApplyBackward {
    /// Checkpointed input and gamma, the statistics, epsilon.
    type State = (NodeId, NodeId, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, gamma_state, stats, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FlexTensor>(gamma_state);
        let (dx, dgamma, dbeta) = bn_backward(x, gamma, stats, epsilon, grad);
        for (node, value) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, value);
            }
        }
    }
}

impl<C: CheckpointStrategy> FastBatchNorm for Autodiff<Flex, C> {
    fn bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(Flex::bn_stats(x.into_primitive()))
    }

    fn bn_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        let prep = BnApplyBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let out = Flex::bn_apply(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    stats.clone(),
                    epsilon,
                );
                prep.finish((x_state, gamma_state, stats, epsilon), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::bn_apply(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                stats,
                epsilon,
            )),
        }
    }
}

/// `bn.forward(x)`; in training on a flex autodiff device, through [`FastBatchNorm`], with
/// the running statistics updated as burn's BatchNorm updates them.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` -> `[B, C, H, W]`
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let [_, channels, ..] = x.dims();
    // burn's own path for anything else, and for what it checks or handles (a channel
    // count that does not fit, an empty batch, other float types)
    let fits = channels == bn.gamma.dims()[0] && x.shape().num_elements() > 0;
    let training = bn.training.val().is_enabled() && super::fast_conv::on_flex_autodiff(&x);
    if !(training && fits && x.dtype() == DType::F32) {
        return bn.forward(x);
    }
    let stats = Tensor::<2>::from_dispatch(<Dispatch as FastBatchNorm>::bn_stats(
        x.clone().detach().into_dispatch(),
    ));
    let out = Tensor::from_dispatch(<Dispatch as FastBatchNorm>::bn_apply(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        stats.clone().into_dispatch(),
        bn.epsilon,
    ));
    let device = out.device();
    let m = bn.momentum;
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let var = stats.slice([1..2, 0..channels]).reshape([channels]);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update((running_mean.mul_scalar(1.0 - m) + mean.mul_scalar(m)).detach());
    bn.running_var
        .update((running_var.mul_scalar(1.0 - m) + var.mul_scalar(m)).detach());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fast_conv::tests::{host as values, max_rel_diff};
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    /// Output, running mean and variance after two steps, and the gradients of x, gamma
    /// and beta of `sum(bn(x) · g)` at the second step.
    fn run(
        fast: bool,
        x: &Tensor<4>,
        g: &Tensor<4>,
        (gamma, beta): (&Tensor<1>, &Tensor<1>),
    ) -> Vec<Vec<f32>> {
        let ad = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(x.dims()[1]).init(&ad);
        bn.gamma = burn::module::Param::from_data(gamma.to_data(), &ad);
        bn.beta = burn::module::Param::from_data(beta.to_data(), &ad);
        let forward = |bn: &BatchNorm, x: Tensor<4>| if fast { batch_norm(bn, x) } else { bn.forward(x) };
        let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let _ = forward(&bn, xa.clone() * 2.0);
        let y = forward(&bn, xa.clone());
        let grads = (y.clone() * Tensor::from_data(g.to_data(), &ad)).sum().backward();
        let grad = |p: &Tensor<1>| values(p.grad(&grads).expect("a gradient"));
        vec![
            values(y),
            values(bn.running_mean.value()),
            values(bn.running_var.value()),
            values(xa.grad(&grads).expect("x gradient")),
            grad(&bn.gamma.val()),
            grad(&bn.beta.val()),
        ]
    }

    #[test]
    fn matches_burns_batchnorm_forward_statistics_and_gradients() {
        let device = Device::flex();
        // (shape, mean, std of x): a large mean against the spread, as after a ReLU
        let cases = [
            ([4, 3, 5, 6], 0.5, 2.0),
            ([2, 16, 8, 8], 0.5, 2.0),
            ([1, 2, 1, 1], 0.5, 2.0),
            ([4, 3, 32, 32], 50.0, 0.5),
        ];
        for (shape, mean, std) in cases {
            let x = Tensor::<4>::random(shape, Distribution::Normal(mean, std), &device);
            let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            // gamma and beta away from 1 and 0
            let c = shape[1];
            let gamma = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.5), &device);
            let beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.5), &device);
            let affine = (&gamma, &beta);
            let (ours, burns) = (run(true, &x, &g, affine), run(false, &x, &g, affine));
            let names = [
                "output",
                "running mean",
                "running var",
                "x grad",
                "gamma grad",
                "beta grad",
            ];
            for ((name, a), b) in names.iter().zip(&burns).zip(&ours) {
                let d = max_rel_diff(a, b);
                assert!(d < 1e-4, "{name} of {shape:?}: {d}");
            }
        }
    }

    #[test]
    fn without_autodiff_it_normalises_with_the_running_statistics() {
        let ad = Device::flex().autodiff();
        let bn = BatchNormConfig::new(3).init(&ad);
        let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &ad);
        // a network without autodiff normalises with the running statistics: mean 0, var 1
        let valid = bn.valid();
        let plain = Tensor::<4>::from_data(x.to_data(), &Device::flex());
        let out = values(batch_norm(&valid, plain.clone()));
        assert!(max_rel_diff(&values(plain), &out) < 1e-4);
        assert_eq!(values(valid.running_mean.value()), vec![0.0; 3]);
    }

    #[test]
    fn statistics_match_f64_sums_when_the_mean_dwarfs_the_spread() {
        let x = Tensor::<4>::random([8, 2, 32, 32], Distribution::Normal(100.0, 0.1), &Device::flex());
        let host_x = values(x.clone());
        let stats = values(Tensor::<2>::from_dispatch(<Dispatch as FastBatchNorm>::bn_stats(
            x.into_dispatch(),
        )));
        let plane = 32 * 32;
        for c in 0..2 {
            let v: Vec<f64> = (0..8)
                .flat_map(|b| host_x[(b * 2 + c) * plane..][..plane].iter().map(|&v| v as f64))
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            assert!(
                (stats[c] as f64 - mean).abs() < 1e-4,
                "mean {} vs {mean}",
                stats[c]
            );
            let rel = (stats[2 + c] as f64 - var).abs() / var;
            assert!(rel < 1e-3, "variance {} vs {var}", stats[2 + c]);
        }
    }

    #[test]
    fn a_frozen_layer_keeps_its_running_statistics() {
        let ad = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(3).init(&ad);
        bn.training = burn::module::Param::from_bool(false);
        let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(3.0, 2.0), &ad);
        let out = values(batch_norm(&bn, x.clone()));
        assert_eq!(out, values(bn.forward(x)));
        assert_eq!(values(bn.running_mean.value()), vec![0.0; 3]);
    }
}
