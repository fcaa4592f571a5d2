//! Exact-sparsity global magnitude pruning: the smallest-magnitude weights over all prunable
//! tensors together are pruned until exactly the requested fraction is zero.

use super::mask::{Masks, prunable_weights};
use crate::model::{CapsNet, HostTensor};

/// Masks that prune exactly `round(sparsity * total)` of the prunable weights of `model`,
/// smallest magnitudes first (ties broken by position). The model is not changed, so the
/// dense weights stay available (the slider's non-destructive pruning).
pub fn magnitude_masks(model: &CapsNet, sparsity: f64) -> Masks {
    let [conv1, primary, digit] = magnitude_masks_of(&prunable_weights(model), sparsity);
    Masks {
        conv1,
        primary,
        digit,
    }
}

/// The prunable weights of a model sorted once by magnitude, so that masks for any
/// sparsity cost one pass (the slider moves many times over the same dense weights).
#[derive(Debug, Clone)]
pub struct MagnitudeOrder {
    shapes: [Vec<usize>; 3],
    lengths: [usize; 3],
    /// Global positions, smallest magnitude first (ties by position).
    order: Vec<u32>,
}

impl MagnitudeOrder {
    /// Reads and sorts the prunable weights of `model`.
    pub fn new(model: &CapsNet) -> Self {
        let tensors = prunable_weights(model);
        let magnitudes: Vec<f32> = tensors
            .iter()
            .flat_map(|t| t.values.iter().map(|v| v.abs()))
            .collect();
        let mut order: Vec<u32> = (0..magnitudes.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            magnitudes[a as usize]
                .total_cmp(&magnitudes[b as usize])
                .then(a.cmp(&b))
        });
        Self {
            lengths: [0, 1, 2].map(|i| tensors[i].values.len()),
            shapes: tensors.map(|t| t.shape),
            order,
        }
    }

    /// The same masks as [`magnitude_masks`] at `sparsity`.
    pub fn masks(&self, sparsity: f64) -> Masks {
        let total = self.order.len();
        let prune = ((sparsity.clamp(0.0, 1.0) * total as f64).round() as usize).min(total);
        let mut keep = vec![1.0f32; total];
        for &i in &self.order[..prune] {
            keep[i as usize] = 0.0;
        }
        let (a, b) = (self.lengths[0], self.lengths[0] + self.lengths[1]);
        let part = |range: std::ops::Range<usize>, i: usize| HostTensor {
            shape: self.shapes[i].clone(),
            values: keep[range].to_vec(),
        };
        Masks {
            conv1: part(0..a, 0),
            primary: part(a..b, 1),
            digit: part(b..total, 2),
        }
    }
}

/// Masks that keep the non-zero weights of magnitude at least `threshold`.
pub fn threshold_masks(model: &CapsNet, threshold: f64) -> Masks {
    let keep = |t: HostTensor| HostTensor {
        values: t
            .values
            .iter()
            .map(|v| f32::from(*v != 0.0 && f64::from(v.abs()) >= threshold))
            .collect(),
        shape: t.shape,
    };
    let [conv1, primary, digit] = prunable_weights(model).map(keep);
    Masks {
        conv1,
        primary,
        digit,
    }
}

/// Largest weight magnitude over the prunable tensors.
pub fn max_magnitude(model: &CapsNet) -> f64 {
    [
        model.conv1_weight.val().abs().max().into_scalar::<f64>(),
        model.primary_weight.val().abs().max().into_scalar::<f64>(),
        model.digit_weight.val().abs().max().into_scalar::<f64>(),
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// [`magnitude_masks`] on host tensors.
pub fn magnitude_masks_of(tensors: &[HostTensor; 3], sparsity: f64) -> [HostTensor; 3] {
    let total: usize = tensors.iter().map(|t| t.values.len()).sum();
    let prune = ((sparsity.clamp(0.0, 1.0) * total as f64).round() as usize).min(total);
    // (magnitude, global position) of every weight; select the `prune` smallest.
    let mut order: Vec<(f32, usize)> = tensors
        .iter()
        .flat_map(|t| t.values.iter())
        .enumerate()
        .map(|(i, v)| (v.abs(), i))
        .collect();
    let mut keep = vec![1.0f32; total];
    if prune > 0 {
        let cmp = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if prune < total {
            order.select_nth_unstable_by(prune - 1, cmp);
        }
        for &(_, i) in &order[..prune] {
            keep[i] = 0.0;
        }
    }
    let mut offset = 0;
    let mut out = tensors.clone();
    for (o, t) in out.iter_mut().zip(tensors) {
        o.values = keep[offset..offset + t.values.len()].to_vec();
        offset += t.values.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn exact_sparsity_on_a_real_model() {
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 4, &Device::flex()).unwrap();
        for s in [0.0, 0.3333, 0.9, 0.95, 0.99, 1.0] {
            let m = magnitude_masks(&net, s);
            assert!((m.sparsity() - s).abs() < 1e-4, "{s} -> {}", m.sparsity());
        }
    }

    #[test]
    fn pruning_is_non_destructive_a_lower_sparsity_restores_the_weights() {
        let dev = Device::flex();
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 4, &dev).unwrap();
        let dense = HostTensor::from_tensor(net.digit_weight.val());
        let high = crate::prune::apply_masks(net.clone(), &magnitude_masks(&net, 0.9).to_device(&dev));
        let low_masks = magnitude_masks(&net, 0.2);
        let low = crate::prune::apply_masks(net.clone(), &low_masks.to_device(&dev));
        let high_w = HostTensor::from_tensor(high.digit_weight.val());
        let low_w = HostTensor::from_tensor(low.digit_weight.val());
        let restored = dense
            .values
            .iter()
            .zip(&low_w.values)
            .zip(&low_masks.digit.values);
        assert!(
            restored
                .clone()
                .all(|((d, l), m)| if *m == 1.0 { d == l } else { *l == 0.0 })
        );
        let zeros = |t: &HostTensor| t.values.iter().filter(|v| **v == 0.0).count();
        assert!(zeros(&low_w) < zeros(&high_w));
    }

    #[test]
    fn the_cached_order_gives_the_same_masks() {
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 5, &Device::flex()).unwrap();
        let order = MagnitudeOrder::new(&net);
        for s in [0.0, 0.37, 0.9, 1.0] {
            assert_eq!(order.masks(s), magnitude_masks(&net, s));
        }
    }

    #[test]
    fn smallest_magnitudes_go_first_and_ties_break_by_position() {
        let t = |v: Vec<f32>| HostTensor {
            shape: vec![v.len()],
            values: v,
        };
        let masks = magnitude_masks_of(&[t(vec![0.5, -0.1]), t(vec![0.2, 0.1]), t(vec![-3.0])], 0.4);
        let got: Vec<Vec<f32>> = masks.iter().map(|m| m.values.clone()).collect();
        assert_eq!(got, vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![1.0]]);
    }
}
