//! One optimiser step with the pruning rules that act on every step: LOBSTER's
//! regularisation and re-applied masks.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::model::CapsNet;
use crate::prune::{DeviceMasks, apply_masks, lobster::lobster_update};

/// Pruning rules applied after each optimiser step.
#[derive(Debug, Clone, Default)]
pub struct StepPruning {
    /// Masks to re-apply (on the training device).
    pub masks: Option<DeviceMasks>,
    /// LOBSTER's lambda, if LOBSTER is on.
    pub lobster_lambda: Option<f64>,
}

/// What a step reports (still on the device).
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Sum of the per-image losses `[1]`.
    pub loss_sum: Tensor<1>,
    /// Correct predictions `[1]`.
    pub hits: Tensor<1, Int>,
}

/// Forward, backward, Adam step, then LOBSTER and masks.
///
/// # Shapes
/// - `images`: `[B, C, H, W]`, `labels`: `[B]`, on the model's autodiff device
pub fn train_step(
    model: CapsNet,
    optim: &mut ModuleOptimizer,
    lr: f64,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    pruning: &StepPruning,
) -> (CapsNet, StepStats) {
    let [n, ..] = images.dims();
    let out = model.forward(images.clone(), false);
    let hits = out
        .lengths
        .clone()
        .argmax(1)
        .reshape([n])
        .equal(labels.clone())
        .int()
        .sum();
    // NaN or infinite outputs that the margin loss would hide (its ReLUs turn NaN into 0)
    // still make the reported loss non-finite
    let outputs_probe = zero_unless_finite(out.lengths.clone().detach());
    let loss = model.loss(&out, images, labels).total;
    let loss_sum = loss.clone().detach() * n as f64 + outputs_probe;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let lobster = pruning.lobster_lambda.map(|lambda| {
        (
            lambda,
            grads.get::<4>(model.conv1_weight.id),
            grads.get::<4>(model.primary_weight.id),
            grads.get::<3>(model.digit_weight.id),
        )
    });
    let mut model = optim.step(lr, model, grads);
    if let Some((lambda, g1, g2, g3)) = lobster {
        if let Some(g) = g1 {
            model.conv1_weight = model.conv1_weight.map(|w| regularised(w, g, lambda));
        }
        if let Some(g) = g2 {
            model.primary_weight = model.primary_weight.map(|w| regularised(w, g, lambda));
        }
        if let Some(g) = g3 {
            model.digit_weight = model.digit_weight.map(|w| regularised(w, g, lambda));
        }
    }
    if let Some(m) = &pruning.masks {
        model = apply_masks(model, m);
    }
    (model, StepStats { loss_sum, hits })
}

/// `[0]` when every value of `t` is finite, `[NaN]` otherwise, on `t`'s device: x * 0 is 0
/// for a finite x and NaN for an infinite or NaN one, so the sum cannot overflow. Added to a
/// loss before it is read back, it costs no extra readback.
pub fn zero_unless_finite<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    t.mul_scalar(0.0).sum()
}

/// [`zero_unless_finite`] over every parameter of `model`.
pub fn finite_probe(model: &CapsNet) -> Tensor<1> {
    struct Probe(Option<Tensor<1>>);
    impl burn::module::ModuleVisitor for Probe {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let p = zero_unless_finite(param.val().detach());
            self.0 = Some(match self.0.take() {
                Some(s) => s + p,
                None => p,
            });
        }
    }
    let mut probe = Probe(None);
    model.visit(&mut probe);
    probe
        .0
        .unwrap_or_else(|| Tensor::zeros([1], &model.conv1_weight.val().device()))
}

/// LOBSTER on a (possibly autodiff) parameter: computed outside the graph, returned as a
/// fresh leaf.
fn regularised<const R: usize>(w: Tensor<R>, grad: Tensor<R>, lambda: f64) -> Tensor<R> {
    let tracked = w.is_require_grad();
    let updated = lobster_update(w.detach(), grad.detach(), lambda).detach();
    if tracked { updated.require_grad() } else { updated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostTensor, Preset};
    use crate::prune::magnitude_masks;
    use burn::optim::AdamConfig;

    #[test]
    fn masked_weights_stay_zero_through_100_adam_steps() {
        let ad = Device::flex().autodiff();
        let mut cfg = Preset::Tiny.config();
        cfg.conv1_channels = 8;
        cfg.types = 2;
        let model = CapsNet::init(&cfg, 1, &ad).unwrap();
        let masks = magnitude_masks(&model, 0.7);
        let pruning = StepPruning {
            masks: Some(masks.to_device(&ad)),
            lobster_lambda: Some(1e-3),
        };
        let mut model = apply_masks(model, pruning.masks.as_ref().unwrap());
        let mut optim = AdamConfig::new().init();
        let data = crate::data::Dataset::load(&crate::data::DataSource::Mnist).unwrap();
        let before = HostTensor::from_tensor(model.digit_weight.val());
        for step in 0..100 {
            let idx: Vec<usize> = (step * 8..step * 8 + 8).collect();
            let (x, y) = data.train.batch(&idx, &ad);
            model = train_step(model, &mut optim, 1e-2, x, y, &pruning).0;
        }
        let after = crate::prune::Masks::from_nonzero(&model);
        for (kept, mask) in after.tensors().iter().zip(masks.tensors()) {
            for (k, m) in kept.values.iter().zip(&mask.values) {
                assert!(!(*m == 0.0 && *k != 0.0), "a masked weight came back");
            }
        }
        // the unmasked weights did train
        assert_ne!(HostTensor::from_tensor(model.digit_weight.val()), before);
        assert!((after.sparsity() - 0.7).abs() < 0.01, "{}", after.sparsity());
    }
}
