//! Structured capsule pruning: primary capsules are ranked by importance and the least
//! important are removed, whole capsule types first (only dead types make the primary
//! convolution smaller).
//!
//! Importance of capsule i: `|W_i| * mean_b |u_i(b)|`, the Frobenius norm of its
//! transformation matrices times its mean activation length on sample images: a capsule
//! matters when it is active and its votes are large. A type's importance is the sum over
//! its capsules.

use burn::prelude::*;

use super::mask::{Masks, apply_masks};
use crate::model::{CapsNet, HostTensor};

/// Images per forward pass when [`capsule_importance`] measures activity.
const IMPORTANCE_BATCH: usize = 64;

/// Importance of every primary capsule.
///
/// # Shapes
/// - `images`: `[B, C, H, W]` sample inputs; returns N values
pub fn capsule_importance(model: &CapsNet, images: Tensor<4>) -> Vec<f32> {
    let b = images.dims()[0].max(1);
    // in parts, so that a large sample needs no more device memory than a training batch
    let lengths = images.split(IMPORTANCE_BATCH, 0).into_iter().map(|part| {
        let (u, _) = model.primary_caps(part, false);
        u.square().sum_dim(2).sqrt().sum_dim(0)
    });
    let norms = w_norms(model);
    let Some(total) = lengths.reduce(|a, b| a + b) else {
        return vec![0.0; norms.len()];
    };
    let activity = HostTensor::from_tensor((total / b as f64).flatten::<1>(0, 2));
    activity.values.iter().zip(&norms).map(|(a, b)| a * b).collect()
}

/// |W_i|: the Frobenius norm of each routed capsule's transformation matrices, in the
/// model's capsule order ([`CapsNet::capsule_indices`] gives their dense indices).
pub fn w_norms(model: &CapsNet) -> Vec<f32> {
    let w = model.digit_weight.val();
    let [n, ..] = w.dims();
    HostTensor::from_tensor(
        w.square()
            .reshape([n as i32, -1])
            .sum_dim(1)
            .sqrt()
            .flatten::<1>(0, 1),
    )
    .values
}

/// Which capsules (and whole types) to remove so that `round(fraction * N)` capsules go:
/// whole types in increasing importance while they fit, then single capsules.
pub fn choose_removed(importance: &[f32], types: usize, fraction: f64) -> (Vec<bool>, Vec<bool>) {
    let n = importance.len();
    let cells = n / types.max(1);
    let target = ((fraction.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut type_score: Vec<(f32, usize)> = (0..types)
        .map(|t| (importance[t * cells..(t + 1) * cells].iter().sum(), t))
        .collect();
    type_score.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut removed = vec![false; n];
    let mut dead_types = vec![false; types];
    let mut count = 0;
    for &(_, t) in &type_score {
        if count + cells > target {
            break;
        }
        dead_types[t] = true;
        removed[t * cells..(t + 1) * cells]
            .iter_mut()
            .for_each(|r| *r = true);
        count += cells;
    }
    let mut rest: Vec<(f32, usize)> = (0..n)
        .filter(|&i| !removed[i])
        .map(|i| (importance[i], i))
        .collect();
    rest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rest.iter().take(target - count) {
        removed[i] = true;
    }
    (removed, dead_types)
}

/// Masks that remove the chosen capsules: their W rows, and the primary filters of dead
/// types. Existing zeros stay zero. The biases of dead types must be zeroed too
/// ([`kill_type_biases`]).
pub fn capsule_masks(model: &CapsNet, removed: &[bool], dead_types: &[bool]) -> Masks {
    let mut masks = Masks::from_nonzero(model);
    let n = removed.len();
    let row = masks.digit.values.len() / n.max(1);
    for (i, _) in removed.iter().enumerate().filter(|(_, r)| **r) {
        masks.digit.values[i * row..(i + 1) * row]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    let d = model.config.primary_dim;
    let per_channel = masks.primary.values.len() / (dead_types.len() * d).max(1);
    for (t, _) in dead_types.iter().enumerate().filter(|(_, dead)| **dead) {
        masks.primary.values[t * d * per_channel..(t + 1) * d * per_channel]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    masks
}

/// Zeroes the primary biases of dead types, so their capsules' poses are identically zero.
pub fn kill_type_biases(mut model: CapsNet, dead_types: &[bool]) -> CapsNet {
    let d = model.config.primary_dim;
    let mut b = HostTensor::from_tensor(model.primary_bias.val());
    for (t, _) in dead_types.iter().enumerate().filter(|(_, dead)| **dead) {
        b.values[t * d..(t + 1) * d].iter_mut().for_each(|v| *v = 0.0);
    }
    let device = model.primary_bias.val().device();
    let tracked = model.primary_bias.val().is_require_grad();
    model.primary_bias = model.primary_bias.map(|_| {
        let t = b.to_tensor::<1>(&device);
        if tracked { t.require_grad() } else { t }
    });
    model
}

/// Removes `round(fraction * N)` capsules of a dense model, the least important first
/// (whole types before single capsules): their W rows, and the primary filters and biases
/// of dead types. `importance` has one value per capsule ([`capsule_importance`]).
pub fn prune_capsules(model: CapsNet, importance: &[f32], fraction: f64) -> CapsNet {
    let (removed, dead_types) = choose_removed(importance, model.config.types, fraction);
    let masks = capsule_masks(&model, &removed, &dead_types);
    let device = model.primary_bias.val().device();
    kill_type_biases(apply_masks(model, &masks.to_device(&device)), &dead_types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_types_go_first_then_single_capsules() {
        // 3 types of 4 capsules; type 1 is the least important
        let imp = [5.0, 5.0, 5.0, 5.0, 0.1, 0.2, 0.1, 0.3, 2.0, 1.0, 3.0, 4.0];
        let (removed, dead) = choose_removed(&imp, 3, 0.5);
        assert_eq!(dead, vec![false, true, false]);
        assert_eq!(removed.iter().filter(|r| **r).count(), 6);
        // then the two weakest capsules of type 2
        assert!(removed[9] && removed[8] && !removed[10]);
    }

    #[test]
    fn removed_capsules_die_and_types_lose_their_filters() {
        let dev = Device::flex();
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 3, &dev).unwrap();
        let x = Tensor::<4>::ones([2, 1, 28, 28], &dev) * 0.5;
        let imp = capsule_importance(&net, x);
        assert_eq!(imp.len(), net.capsules());
        let (removed, dead) = choose_removed(&imp, 8, 0.75);
        let masks = capsule_masks(&net, &removed, &dead);
        let pruned = kill_type_biases(crate::prune::apply_masks(net, &masks.to_device(&dev)), &dead);
        let s = crate::prune::survival(&pruned);
        assert_eq!(s.map.alive_count(), 288 - 216);
        assert_eq!(s.map.alive_types(), 2);
        let small = crate::prune::compact(&pruned).unwrap();
        assert_eq!(small.primary_types(), 2);
    }
}
