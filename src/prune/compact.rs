//! Compaction: a network with only the alive capsules (W becomes `[K, D, J*E]`), only the
//! live capsule types' primary filters, and only the conv1 channels that matter. A conv1
//! channel whose filter is all zero outputs the constant `relu(bias)`, which is folded into
//! the primary bias exactly (the primary convolution has no padding). The compact network's
//! outputs equal the masked dense network's.

use burn::module::Param;
use burn::prelude::*;

use super::survival::survival;
use crate::model::{CapsNet, Compaction, HostTensor};

/// Why a network cannot be compacted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompactError {
    /// Every capsule is dead.
    #[error("no primary capsule is alive: nothing to keep")]
    NothingAlive,
}

/// Which conv1 channels the compact network keeps, and the primary filters restricted to
/// them. A channel with an all-zero filter outputs the constant `relu(bias)`: its effect is
/// folded into `bias` (the live primary biases) and the channel dropped; a channel no live
/// primary filter reads is dropped too. At least one channel stays (a convolution needs
/// one); if none would, channel 0 stays with zero primary weights.
///
/// # Shapes
/// - `conv1_w`: `[C1, C, k1, k1]`; `conv1_b`: `[C1]`; `pw_live`: `[O, C1, k2, k2]`
/// - returns K channel indices and `[O, K, k2, k2]` values
fn conv1_channels_kept(
    conv1_w: &HostTensor,
    conv1_b: &HostTensor,
    pw_live: &HostTensor,
    bias: &mut [f32],
) -> (Vec<usize>, Vec<f32>) {
    let c1 = conv1_b.values.len();
    let outs = pw_live.shape[0];
    let k2 = pw_live.shape[2] * pw_live.shape[3];
    let in_filter = conv1_w.values.len() / c1.max(1);
    let weight_of = |o: usize, ch: usize| &pw_live.values[(o * c1 + ch) * k2..(o * c1 + ch + 1) * k2];
    let mut kept = Vec::new();
    let mut folded = vec![false; c1];
    for (ch, was_folded) in folded.iter_mut().enumerate() {
        let filter_zero = conv1_w.values[ch * in_filter..(ch + 1) * in_filter]
            .iter()
            .all(|v| *v == 0.0);
        let read = (0..outs).any(|o| weight_of(o, ch).iter().any(|v| *v != 0.0));
        if !read {
            continue;
        }
        if filter_zero {
            let constant = conv1_b.values[ch].max(0.0);
            for (o, b) in bias.iter_mut().enumerate() {
                *b += constant * weight_of(o, ch).iter().sum::<f32>();
            }
            *was_folded = true;
        } else {
            kept.push(ch);
        }
    }
    if kept.is_empty() {
        kept.push(0);
    }
    let mut values = Vec::with_capacity(outs * kept.len() * k2);
    for o in 0..outs {
        for &ch in &kept {
            if folded[ch] {
                values.extend(std::iter::repeat_n(0.0, k2));
            } else {
                values.extend_from_slice(weight_of(o, ch));
            }
        }
    }
    (kept, values)
}

/// The dense network a compact one stands for: its kept weights at their original places
/// and zeros elsewhere (a dropped conv1 channel gets a zero filter and bias, a removed
/// type zero filters and biases, a removed capsule a zero row of W). It computes what the
/// compact network computes: a folded conv1 channel's constant is already in the primary
/// bias, and a capsule without votes does not change the routing of the others. A network
/// that is not compact is returned as it is (borrowed, not copied).
///
/// # Shapes
/// conv1 `[K1, C, k1, k1]` -> `[C1, C, k1, k1]`, primary `[L * D, K1, k2, k2]` ->
/// `[T * D, C1, k2, k2]`, W `[K, D, J * E]` -> `[N, D, J * E]`
pub fn expand(model: &CapsNet) -> std::borrow::Cow<'_, CapsNet> {
    match &model.compact {
        Some(k) => std::borrow::Cow::Owned(expand_record(model, k)),
        None => std::borrow::Cow::Borrowed(model),
    }
}

/// [`expand`] of a network compacted as `k` records.
fn expand_record(model: &CapsNet, k: &Compaction) -> CapsNet {
    let c = &model.config;
    let (d, cells) = (c.primary_dim, model.geometry().cells());
    let [conv1_w, pw, digit] = super::mask::prunable_weights(model);
    let conv1_b = HostTensor::from_tensor(model.conv1_bias.val());
    let pb = HostTensor::from_tensor(model.primary_bias.val());
    let (kept, c1) = (k.conv1_channels.len(), c.conv1_channels);
    let filter = conv1_w.values.len() / kept.max(1);
    let mut w1 = vec![0.0; c1 * filter];
    let mut b1 = vec![0.0; c1];
    for (i, &ch) in k.conv1_channels.iter().enumerate() {
        w1[ch * filter..(ch + 1) * filter].copy_from_slice(&conv1_w.values[i * filter..(i + 1) * filter]);
        b1[ch] = conv1_b.values[i];
    }
    let k2 = pw.shape[2] * pw.shape[3];
    let mut w2 = vec![0.0; c.types * d * c1 * k2];
    let mut b2 = vec![0.0; c.types * d];
    for (lt, &t) in k.live_types.iter().enumerate() {
        for dd in 0..d {
            let (from, to) = (lt * d + dd, t * d + dd);
            b2[to] = pb.values[from];
            for (i, &ch) in k.conv1_channels.iter().enumerate() {
                let src = (from * kept + i) * k2;
                let dst = (to * c1 + ch) * k2;
                w2[dst..dst + k2].copy_from_slice(&pw.values[src..src + k2]);
            }
        }
    }
    let row = digit.values.len() / k.capsules.len().max(1);
    let mut w3 = vec![0.0; c.types * cells * row];
    for (r, &i) in k.capsules.iter().enumerate() {
        w3[i * row..(i + 1) * row].copy_from_slice(&digit.values[r * row..(r + 1) * row]);
    }
    let device = model.digit_weight.val().device();
    let param = |values: Vec<f32>, shape: Vec<usize>| TensorData::new(values, shape);
    CapsNet {
        conv1_weight: Param::from_data(
            param(w1, [vec![c1], conv1_w.shape[1..].to_vec()].concat()),
            &device,
        ),
        conv1_bias: Param::from_data(param(b1, vec![c1]), &device),
        primary_weight: Param::from_data(
            param(w2, vec![c.types * d, c1, pw.shape[2], pw.shape[3]]),
            &device,
        ),
        primary_bias: Param::from_data(param(b2, vec![c.types * d]), &device),
        digit_weight: Param::from_data(param(w3, vec![c.types * cells, d, row / d.max(1)]), &device),
        compact: None,
        ..model.clone()
    }
}

/// Builds the compact network of a dense (masked) network. A compact network is compacted
/// again (what its record keeps, as a dense network), so capsules, types and conv1
/// channels that died since are dropped too.
pub fn compact(model: &CapsNet) -> Result<CapsNet, CompactError> {
    if model.compact.is_some() {
        return compact(&expand(model));
    }
    let c = &model.config;
    let cells = model.geometry().cells();
    let d = c.primary_dim;
    let alive = survival(model).map.alive;
    let capsules: Vec<usize> = (0..alive.len()).filter(|&i| alive[i]).collect();
    if capsules.is_empty() {
        return Err(CompactError::NothingAlive);
    }
    let mut live_types: Vec<usize> = capsules.iter().map(|i| i / cells).collect();
    live_types.dedup();
    let [conv1_w, pw, digit] = super::mask::prunable_weights(model);
    let conv1_b = HostTensor::from_tensor(model.conv1_bias.val());
    let pb = HostTensor::from_tensor(model.primary_bias.val());
    // primary output channels of the live types
    let out_channels: Vec<usize> = live_types.iter().flat_map(|t| t * d..(t + 1) * d).collect();
    let pw_live = pw.select(0, &out_channels);
    let mut bias: Vec<f32> = out_channels.iter().map(|&o| pb.values[o]).collect();
    let (conv1_channels, pw_values) = conv1_channels_kept(&conv1_w, &conv1_b, &pw_live, &mut bias);
    let positions = live_types.len() * cells;
    let select =
        (capsules.len() != positions).then(|| Compaction::positions_of(&capsules, &live_types, cells));
    let device = model.digit_weight.val().device();
    let up = |t: HostTensor| TensorData::new(t.values, t.shape);
    let kept_conv1 = conv1_w.select(0, &conv1_channels);
    let kept_b1 = conv1_b.select(0, &conv1_channels);
    Ok(CapsNet {
        backbone: model.backbone.clone(),
        conv1_weight: Param::from_data(up(kept_conv1), &device),
        conv1_bias: Param::from_data(up(kept_b1), &device),
        primary_weight: Param::from_data(
            TensorData::new(
                pw_values,
                [out_channels.len(), conv1_channels.len(), pw.shape[2], pw.shape[3]],
            ),
            &device,
        ),
        primary_bias: Param::from_data(TensorData::new(bias, [out_channels.len()]), &device),
        digit_weight: Param::from_data(up(digit.select(0, &capsules)), &device),
        digit_bias: model.digit_bias.clone(),
        decoder: model.decoder.clone(),
        config: c.clone(),
        compact: Some(Compaction {
            conv1_channels,
            live_types,
            capsules,
            select,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use crate::prune::{apply_masks, magnitude_masks};

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Magnitude masks at `sparsity` that prune W only: the (small) conv filters stay, so
    /// conv1's channels stay in use.
    fn w_masks(net: &CapsNet, sparsity: f64) -> crate::prune::Masks {
        let mut masks = magnitude_masks(net, sparsity);
        masks.primary.values.iter_mut().for_each(|v| *v = 1.0);
        masks.conv1.values.iter_mut().for_each(|v| *v = 1.0);
        masks
    }

    /// `model` with the filters and biases of its first primary capsule type (in its own
    /// order: the first live type of a compact model) zeroed: that type dies.
    fn without_first_type(mut model: CapsNet) -> CapsNet {
        let d = model.config.primary_dim;
        let dev = model.primary_bias.val().device();
        let mut pw = HostTensor::from_tensor(model.primary_weight.val());
        let mut pb = HostTensor::from_tensor(model.primary_bias.val());
        let per = pw.values.len() / pw.shape[0];
        pw.values[..d * per].iter_mut().for_each(|v| *v = 0.0);
        pb.values[..d].iter_mut().for_each(|v| *v = 0.0);
        model.primary_weight = Param::from_tensor(pw.to_tensor(&dev));
        model.primary_bias = Param::from_tensor(pb.to_tensor(&dev));
        model
    }

    #[test]
    fn compact_equals_masked_dense_and_shrinks() {
        let dev = Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 9, &dev).unwrap();
        let masks = w_masks(&net, 0.95);
        // kill a whole type and a conv1 channel with a positive bias (folded)
        let mut pruned = without_first_type(apply_masks(net, &masks.to_device(&dev)));
        let mut c1 = HostTensor::from_tensor(pruned.conv1_weight.val());
        let f = c1.values.len() / c1.shape[0];
        c1.values[..f].iter_mut().for_each(|v| *v = 0.0);
        let mut b1 = HostTensor::from_tensor(pruned.conv1_bias.val());
        b1.values[0] = 0.3;
        pruned.conv1_weight = Param::from_tensor(c1.to_tensor(&dev));
        pruned.conv1_bias = Param::from_tensor(b1.to_tensor(&dev));

        let small = compact(&pruned).unwrap();
        let k = small.compact.as_ref().unwrap();
        assert!(!k.live_types.contains(&0));
        assert!(!k.conv1_channels.contains(&0));
        assert_eq!(small.capsules(), survival(&pruned).map.alive_count());
        assert_eq!(survival(&small).map, survival(&pruned).map);
        let data = crate::data::Dataset::load(&crate::data::DataSource::Mnist).unwrap();
        for batch in [vec![0, 1, 2], (0..20).collect::<Vec<_>>()] {
            let (x, _) = data.test.batch(&batch, &dev);
            let a = pruned.forward(x.clone(), false);
            let b = small.forward(x, false);
            assert!(max_diff(a.lengths, b.lengths) < 1e-5);
        }
    }

    #[test]
    fn a_compact_network_pruned_further_compacts_again() {
        let dev = Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 9, &dev).unwrap();
        let mut masks = w_masks(&net, 0.5);
        // a whole type dead from the start, so that the first compaction selects capsules
        let (cells, w_row) = (
            net.geometry().cells(),
            masks.digit.values.len() / masks.digit.shape[0],
        );
        masks.digit.values[..cells * w_row]
            .iter_mut()
            .for_each(|v| *v = 0.0);
        // conv1 channels 0 and 3 read by no primary filter: the first compaction drops them,
        // so the second must put the others back at their own places
        let [_, c1, kh, kw] = masks.primary.shape[..] else {
            panic!("primary mask shape")
        };
        for (i, v) in masks.primary.values.iter_mut().enumerate() {
            if [0, 3].contains(&(i / (kh * kw) % c1)) {
                *v = 0.0;
            }
        }
        let small = compact(&apply_masks(net, &masks.to_device(&dev))).unwrap();
        let first = small.compact.clone().unwrap();
        assert!(!first.conv1_channels.contains(&0) && !first.conv1_channels.contains(&3));
        // the compact network loses five capsules' W rows and its first live type's filters
        let mut w = HostTensor::from_tensor(small.digit_weight.val());
        let row = w.values.len() / w.shape[0];
        w.values[..5 * row].iter_mut().for_each(|v| *v = 0.0);
        let mut pruned = without_first_type(small.clone());
        pruned.digit_weight = Param::from_tensor(w.to_tensor(&dev));

        let smaller = compact(&pruned).unwrap();
        let second = smaller.compact.clone().unwrap();
        assert_eq!(smaller.capsules(), survival(&pruned).map.alive_count());
        assert!(smaller.capsules() < small.capsules());
        assert!(!second.live_types.contains(&first.live_types[0]));
        assert!(second.capsules.iter().all(|i| first.capsules.contains(i)));
        assert!(
            second
                .conv1_channels
                .iter()
                .all(|c| first.conv1_channels.contains(c))
        );
        let data = crate::data::Dataset::load(&crate::data::DataSource::Mnist).unwrap();
        let (x, _) = data.test.batch(&(0..20).collect::<Vec<_>>(), &dev);
        let a = pruned.forward(x.clone(), false).lengths;
        let b = smaller.forward(x.clone(), false).lengths;
        assert!(max_diff(a, b.clone()) < 1e-5);
        // compacting a compact network that lost nothing changes nothing
        let again = compact(&smaller).unwrap();
        assert_eq!(again.compact, smaller.compact);
        assert!(max_diff(again.forward(x, false).lengths, b) < 1e-6);
    }

    #[test]
    fn a_network_without_live_primary_filters_still_compacts() {
        let dev = Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 9, &dev).unwrap();
        // at 95% global sparsity the small primary filters are all pruned
        let pruned = apply_masks(net.clone(), &magnitude_masks(&net, 0.95).to_device(&dev));
        let small = compact(&pruned).unwrap();
        assert_eq!(small.conv1_weight.dims()[0], 1);
        let x = Tensor::<4>::ones([2, 1, 28, 28], &dev) * 0.3;
        let a = pruned.forward(x.clone(), false).lengths;
        let b = small.forward(x, false).lengths;
        assert!(max_diff(a, b) < 1e-5);
    }

    #[test]
    fn nothing_alive_is_an_error() {
        let dev = Device::flex();
        let net = CapsNet::init(&Preset::Tiny.config(), 9, &dev).unwrap();
        let pruned = apply_masks(net.clone(), &magnitude_masks(&net, 1.0).to_device(&dev));
        assert_eq!(compact(&pruned).unwrap_err(), CompactError::NothingAlive);
    }
}
