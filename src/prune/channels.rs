//! Structured pruning of conv1's channels: conv1 is the CapsNet's one-layer backbone, and
//! once most capsule types are gone it costs more than the primary convolution that is
//! left. A channel is removed by zeroing its filter; it then outputs the constant
//! `relu(bias)`, which compaction folds into the primary bias exactly, so the compact
//! network has fewer conv1 channels and a thinner primary convolution.
//!
//! Importance of channel c: `|F_c|_1 * sum_o |P_{o,c}|_1`, the L1 norm of its conv1 filter
//! times the L1 norm of every primary weight that reads it (filters of dead capsule types
//! are zero, so only live types count). Channels that nothing reads score 0 and go first.

use super::mask::{Masks, apply_masks, prunable_weights};
use crate::model::CapsNet;

/// Importance of every conv1 channel (see the module documentation).
pub fn channel_importance(model: &CapsNet) -> Vec<f32> {
    let [conv1, primary, _] = prunable_weights(model);
    let channels = conv1.shape.first().copied().unwrap_or(0);
    if channels == 0 {
        return Vec::new();
    }
    let filter = conv1.values.len() / channels;
    let k2 = primary
        .shape
        .get(2..4)
        .map_or(1, |s| s.iter().product::<usize>().max(1));
    let mut read = vec![0.0f32; channels];
    for (i, w) in primary.values.chunks(k2).enumerate() {
        read[i % channels] += w.iter().map(|v| v.abs()).sum::<f32>();
    }
    conv1
        .values
        .chunks(filter.max(1))
        .zip(read)
        .map(|(f, r)| f.iter().map(|v| v.abs()).sum::<f32>() * r)
        .collect()
}

/// Which channels to remove so that `round(fraction * C1)` go, the least important first
/// (ties by index); at least one channel always stays.
pub fn choose_channels(importance: &[f32], fraction: f64) -> Vec<bool> {
    let n = importance.len();
    let target = ((fraction.clamp(0.0, 1.0) * n as f64).round() as usize).min(n.saturating_sub(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| importance[a].total_cmp(&importance[b]).then(a.cmp(&b)));
    let mut removed = vec![false; n];
    for &c in order.iter().take(target) {
        removed[c] = true;
    }
    removed
}

/// Removes `round(fraction * C1)` conv1 channels of a dense model, the least important
/// first, by zeroing their filters (existing zeros stay zero).
pub fn prune_channels(model: CapsNet, fraction: f64) -> CapsNet {
    let removed = choose_channels(&channel_importance(&model), fraction);
    let mut masks = Masks::from_nonzero(&model);
    let filter = masks.conv1.values.len() / removed.len().max(1);
    for (c, _) in removed.iter().enumerate().filter(|(_, r)| **r) {
        masks.conv1.values[c * filter..(c + 1) * filter]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    let device = model.conv1_weight.val().device();
    apply_masks(model, &masks.to_device(&device))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::model::{HostTensor, Preset};

    #[test]
    fn the_weakest_channels_go_and_compaction_keeps_the_outputs() {
        let dev = Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 5, &dev).unwrap();
        let imp = channel_importance(&net);
        assert_eq!(imp.len(), 64);
        let removed = choose_channels(&imp, 0.75);
        assert_eq!(removed.iter().filter(|r| **r).count(), 48);
        let weakest_kept = (0..64)
            .filter(|&c| !removed[c])
            .map(|c| imp[c])
            .fold(f32::MAX, f32::min);
        assert!((0..64).filter(|&c| removed[c]).all(|c| imp[c] <= weakest_kept));
        assert_eq!(choose_channels(&imp, 1.0).iter().filter(|r| **r).count(), 63);

        let importance = vec![1.0; net.capsules()];
        let pruned = crate::prune::capsules::prune_capsules(net, &importance, 0.75);
        let pruned = prune_channels(pruned, 0.75);
        let small = crate::prune::compact(&pruned).unwrap();
        assert_eq!(small.conv1_weight.val().dims()[0], 16);
        let x = Tensor::<4>::random([3, 1, 28, 28], burn::tensor::Distribution::Default, &dev);
        let a = HostTensor::from_tensor(pruned.forward(x.clone(), false).lengths);
        let b = HostTensor::from_tensor(small.forward(x, false).lengths);
        let diff = a
            .values
            .iter()
            .zip(&b.values)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "compact and masked differ by {diff}");
    }
}
