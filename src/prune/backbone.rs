//! Structured pruning of a backbone's channels, EagleEye-style (Li et al., ECCV 2020):
//! sample per-group channel-keep ratios that meet a FLOPs target, keep each group's
//! filters with the largest L1 norm, recompute the BatchNorm statistics on a few training
//! batches (adaptive BN, no gradients), score each candidate by accuracy, keep the best.
//!
//! A pruned backbone is physically narrower ([`narrow`]); [`mask_channels`] gives the
//! dense network with the same channels silenced, which computes the same outputs.

use std::collections::HashMap;

use burn::module::RunningState;
use burn::prelude::*;

use crate::data::Split;
use crate::model::{BackboneKind, BackbonePlan, CapsNet, CapsNetConfig, HostTensor, ParamsError};
use crate::rng::Rng;

/// Why a backbone cannot be pruned as asked.
#[derive(Debug, thiserror::Error)]
pub enum BackbonePruneError {
    /// The network has no backbone.
    #[error("this model has no backbone to prune (backbone presets: resnet-caps, mobilenet-caps)")]
    NoBackbone,
    /// The FLOPs target is out of range.
    #[error("the FLOPs target must be in (0, 1], not {0}")]
    Target(f64),
    /// No sampled candidate met the target.
    #[error("no channel choice keeps {target:.0}% of the backbone's FLOPs within 2 points (this model keeps {now:.1}% already)", target = .target * 100.0, now = .now * 100.0)]
    Unreachable {
        /// The target fraction.
        target: f64,
        /// The fraction the network keeps now.
        now: f64,
    },
    /// The pruned tensors do not fit the pruned config (a bug).
    #[error("pruned network: {0}")]
    Params(#[from] ParamsError),
    /// A channel choice does not fit the network.
    #[error("channel choice for group {group}: {why}")]
    Channels {
        /// The group.
        group: usize,
        /// What is wrong.
        why: String,
    },
}

/// How far off the FLOPs target a candidate may be (fraction of the dense FLOPs).
pub const FLOPS_TOLERANCE: f64 = 0.02;

/// The backbone as the network has it now (narrowed, if it was pruned).
fn current_plan(c: &CapsNetConfig) -> Result<BackbonePlan, BackbonePruneError> {
    c.backbone_plan().ok_or(BackbonePruneError::NoBackbone)
}

/// The smallest fraction of the dense backbone's FLOPs a pruned backbone can keep: one
/// channel in every prunable group.
pub fn smallest_flops(c: &CapsNetConfig) -> Result<f64, BackbonePruneError> {
    let groups = current_plan(c)?.groups().len();
    Ok(flops_fraction(c, &vec![1; groups]))
}

/// Fraction of the dense backbone's multiply-adds that a network with group widths
/// `counts` keeps (the whole backbone when `counts` is empty).
pub fn flops_fraction(c: &CapsNetConfig, counts: &[usize]) -> f64 {
    let size = (c.height, c.width);
    let dense = c.clone().with_backbone_channels(vec![]).backbone_plan();
    let pruned = c.clone().with_backbone_channels(counts.to_vec()).backbone_plan();
    match (dense, pruned) {
        (Some(d), Some(p)) => p.macs(size) / d.macs(size).max(1.0),
        _ => 1.0,
    }
}

/// Names of the layers that produce (and, for MobileNet, depthwise-filter) group `g`,
/// and of the weight that reads it along its input axis.
fn group_layers(kind: BackboneKind, blocks: usize, g: usize) -> (Vec<String>, String) {
    match kind {
        BackboneKind::Resnet => (
            vec![format!("backbone.block{g}.a")],
            format!("backbone.block{g}.b.weight"),
        ),
        _ => {
            let producer = if g == 0 {
                "backbone.stem".to_string()
            } else {
                format!("backbone.block{}.b", g - 1)
            };
            if g < blocks {
                (
                    vec![producer, format!("backbone.block{g}.a")],
                    format!("backbone.block{g}.b.weight"),
                )
            } else {
                (vec![producer], "conv1.weight".to_string())
            }
        }
    }
}

/// L1 norm of the filter that produces each channel of each group.
pub fn group_importance(model: &CapsNet) -> Result<Vec<Vec<f32>>, BackbonePruneError> {
    let now = current_plan(&model.config)?;
    let named: HashMap<String, HostTensor> = model.to_named().into_iter().collect();
    (0..now.groups().len())
        .map(|g| {
            let (layers, _) = group_layers(now.kind, now.blocks.len(), g);
            let name = format!("{}.weight", layers[0]);
            let w = named.get(&name).ok_or_else(|| BackbonePruneError::Channels {
                group: g,
                why: format!("the network has no tensor {name}"),
            })?;
            let n = w.shape[0].max(1);
            let row = w.values.len() / n;
            Ok((0..n)
                .map(|o| w.values[o * row..(o + 1) * row].iter().map(|v| v.abs()).sum())
                .collect())
        })
        .collect()
}

/// The `counts[g]` strongest channels of each group, in ascending order.
pub fn choose_kept(importance: &[Vec<f32>], counts: &[usize]) -> Vec<Vec<usize>> {
    importance
        .iter()
        .zip(counts)
        .map(|(scores, &k)| {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let mut kept: Vec<usize> = order.into_iter().take(k.max(1)).collect();
            kept.sort_unstable();
            kept
        })
        .collect()
}

/// The names of every tensor of a group's layers.
fn layer_tensors(layers: &[String]) -> Vec<String> {
    layers
        .iter()
        .flat_map(|l| {
            ["weight", "bn.gamma", "bn.beta", "bn.mean", "bn.var"]
                .into_iter()
                .map(move |t| format!("{l}.{t}"))
        })
        .collect()
}

fn rebuild(
    model: &CapsNet,
    config: &CapsNetConfig,
    named: HashMap<String, HostTensor>,
) -> Result<CapsNet, BackbonePruneError> {
    let device = model.conv1_weight.val().device();
    Ok(CapsNet::from_named_compact(
        config,
        model.compact.clone(),
        |k| named.get(k).cloned(),
        &device,
    )?)
}

/// The network with only the channels `kept[g]` (indices into its current channels) of
/// each group: the producing filters, their BatchNorm, the depthwise filters and the
/// weights that read them are sliced; everything else is unchanged.
pub fn narrow(model: &CapsNet, kept: &[Vec<usize>]) -> Result<CapsNet, BackbonePruneError> {
    let now = current_plan(&model.config)?;
    let mut named: HashMap<String, HostTensor> = model.to_named().into_iter().collect();
    let widths = now.groups();
    if kept.len() != widths.len() {
        return Err(BackbonePruneError::Channels {
            group: kept.len().min(widths.len()),
            why: format!("{} groups given, the backbone has {}", kept.len(), widths.len()),
        });
    }
    for (g, (keep, &width)) in kept.iter().zip(&widths).enumerate() {
        let ascending = keep.windows(2).all(|w| w[0] < w[1]);
        if keep.is_empty() || !ascending || keep.iter().any(|&c| c >= width) {
            return Err(BackbonePruneError::Channels {
                group: g,
                why: format!("kept channels must be ascending, 1 or more, each below {width}"),
            });
        }
        let (layers, reader) = group_layers(now.kind, now.blocks.len(), g);
        for name in layer_tensors(&layers) {
            if let Some(t) = named.get(&name) {
                let t = t.select(0, keep);
                named.insert(name, t);
            }
        }
        if let Some(t) = named.get(&reader) {
            let t = t.select(1, keep);
            named.insert(reader, t);
        }
    }
    let counts: Vec<usize> = kept.iter().map(Vec::len).collect();
    let config = model.config.clone().with_backbone_channels(counts);
    rebuild(model, &config, named)
}

/// The same network with the channels not in `kept[g]` silenced: their BatchNorm scale and
/// shift (and those of the depthwise filters reading them) are zero, so they output zero
/// after the ReLU. Computes what [`narrow`] computes.
pub fn mask_channels(model: &CapsNet, kept: &[Vec<usize>]) -> Result<CapsNet, BackbonePruneError> {
    let now = current_plan(&model.config)?;
    let mut named: HashMap<String, HostTensor> = model.to_named().into_iter().collect();
    for (g, keep) in kept.iter().enumerate().take(now.groups().len()) {
        let (layers, _) = group_layers(now.kind, now.blocks.len(), g);
        for l in layers {
            for part in ["bn.gamma", "bn.beta"] {
                if let Some(t) = named.get_mut(&format!("{l}.{part}")) {
                    for (c, v) in t.values.iter_mut().enumerate() {
                        if !keep.contains(&c) {
                            *v = 0.0;
                        }
                    }
                }
            }
        }
    }
    rebuild(model, &model.config, named)
}

/// Adaptive BN: every BatchNorm's running mean and variance become the average of its
/// batch statistics over `batches` (images in [0, 1]); no weight changes. Returns the
/// network without autodiff.
///
/// # Shapes
/// - each batch: `[B, C, H, W]`
pub fn adapt_bn(model: CapsNet, batches: impl IntoIterator<Item = Tensor<4>>) -> CapsNet {
    let mut batches = batches.into_iter().peekable();
    if batches.peek().is_none() {
        // no images: the statistics stay as they are
        return model;
    }
    let device = model.conv1_weight.val().device();
    let ad = device.clone().autodiff();
    let mut model = model;
    let mut momenta = Vec::new();
    if let Some(b) = &mut model.backbone {
        for l in b.layers_mut() {
            let n = l.bn.gamma.dims()[0];
            // fresh states: clones of the network keep their statistics
            l.bn.running_mean = RunningState::new(Tensor::zeros([n], &device));
            l.bn.running_var = RunningState::new(Tensor::ones([n], &device));
            momenta.push(l.bn.momentum);
        }
    }
    let mut model = model.fork(&ad).train();
    for (i, x) in batches.enumerate() {
        let x = model.normalise(x.autodiff());
        if let Some(b) = &mut model.backbone {
            for l in b.layers_mut() {
                l.bn.momentum = 1.0 / (i + 1) as f64;
            }
            let _ = b.forward(x);
        }
    }
    if let Some(b) = &mut model.backbone {
        for (l, m) in b.layers_mut().into_iter().zip(momenta) {
            l.bn.momentum = m;
        }
    }
    model.valid()
}

/// Settings of an EagleEye search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EagleEye {
    /// Fraction of the dense backbone's FLOPs to keep, in (0, 1].
    pub flops: f64,
    /// Candidates to sample and score.
    pub candidates: usize,
    /// Training batches for adaptive BN.
    pub calibration_batches: usize,
    /// Images per batch (calibration and scoring).
    pub batch: usize,
    /// Training images each candidate is scored on.
    pub score_images: usize,
    /// Smallest keep ratio sampled for a group.
    pub min_ratio: f64,
    /// Sampling seed.
    pub seed: u64,
}

impl Default for EagleEye {
    /// Half the FLOPs, 20 candidates, 10 calibration batches of 64, 1,000 scoring images,
    /// ratios from 0.1, seed 7.
    fn default() -> Self {
        Self {
            flops: 0.5,
            candidates: 20,
            calibration_batches: 10,
            batch: 64,
            score_images: 1000,
            min_ratio: 0.1,
            seed: 7,
        }
    }
}

/// One scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Channels kept per group.
    pub counts: Vec<usize>,
    /// Fraction of the dense backbone FLOPs kept.
    pub flops: f64,
    /// Accuracy on the scoring images after adaptive BN.
    pub accuracy: f64,
}

/// Group widths near `target` FLOPs with group `g` keeping a share proportional to
/// `ratios[g]`: one common factor found by bisection (each group keeps 1..= its channels).
fn counts_for(c: &CapsNetConfig, target: f64, ratios: &[f64]) -> Vec<usize> {
    let now = c.backbone_plan().map(|p| p.groups()).unwrap_or_default();
    let counts = |alpha: f64| -> Vec<usize> {
        now.iter()
            .zip(ratios)
            .map(|(&w, r)| ((alpha * r * w as f64).round() as usize).clamp(1, w))
            .collect()
    };
    let smallest = ratios.iter().copied().fold(1.0, f64::min).max(1e-3);
    let (mut lo, mut hi) = (0.0, 1.0 / smallest);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if flops_fraction(c, &counts(mid)) <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    counts(lo)
}

/// Random group widths near `target` FLOPs: ratios drawn from `[min_ratio, 1]`, scaled by
/// [`counts_for`]; `None` if the result is more than [`FLOPS_TOLERANCE`] off.
pub fn sample_counts(c: &CapsNetConfig, target: f64, min_ratio: f64, rng: &mut Rng) -> Option<Vec<usize>> {
    let groups = c.backbone_plan()?.groups().len();
    let ratios: Vec<f64> = (0..groups)
        .map(|_| min_ratio + (1.0 - min_ratio) * rng.next_f64())
        .collect();
    let counts = counts_for(c, target, &ratios);
    ((flops_fraction(c, &counts) - target).abs() <= FLOPS_TOLERANCE).then_some(counts)
}

/// Group widths near `target` FLOPs with every group keeping the same share.
pub fn uniform_counts(c: &CapsNetConfig, target: f64) -> Result<Vec<usize>, BackbonePruneError> {
    let now = current_plan(c)?;
    if !(target > 0.0 && target <= 1.0) {
        return Err(BackbonePruneError::Target(target));
    }
    Ok(counts_for(c, target, &vec![1.0; now.groups().len()]))
}

/// Runs the search: samples candidates meeting `settings.flops`, prunes each by L1 norm,
/// adapts its BatchNorm on the first training batches, scores it with
/// `accuracy(candidate, images, batch)` on the last `score_images` training images, and
/// returns the best network with every candidate's score. `progress(done, total)` is
/// called after each candidate.
pub fn eagleeye(
    model: &CapsNet,
    train: &Split,
    settings: EagleEye,
    mut accuracy: impl FnMut(&CapsNet, &Split, usize) -> f64,
    mut progress: impl FnMut(usize, usize),
) -> Result<(CapsNet, Vec<Candidate>), BackbonePruneError> {
    let c = &model.config;
    current_plan(c)?;
    if !(settings.flops > 0.0 && settings.flops <= 1.0) {
        return Err(BackbonePruneError::Target(settings.flops));
    }
    let device = model.conv1_weight.val().device();
    let importance = group_importance(model)?;
    let mut rng = Rng::new(settings.seed);
    let batch = settings.batch.max(1);
    // calibration batches from the images before the scoring tail (all, if too few)
    let scoring = train.tail(settings.score_images.max(1));
    let before = train.len() - scoring.len();
    let calibration: Vec<Vec<usize>> = train
        .batches(batch, Some(settings.seed))
        .into_iter()
        .map(|b| {
            b.into_iter()
                .filter(|&i| i < before || before == 0)
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty())
        .take(settings.calibration_batches.max(1))
        .collect();
    let mut best: Option<(CapsNet, usize)> = None;
    let mut found = Vec::new();
    let tries = settings.candidates.max(1) * 20;
    for _ in 0..tries {
        if found.len() >= settings.candidates.max(1) {
            break;
        }
        let Some(counts) = sample_counts(c, settings.flops, settings.min_ratio, &mut rng) else {
            continue;
        };
        let narrowed = narrow(model, &choose_kept(&importance, &counts))?;
        let adapted = adapt_bn(
            narrowed,
            calibration.iter().map(|idx| train.batch(idx, &device).0),
        );
        let accuracy = accuracy(&adapted, &scoring, batch);
        found.push(Candidate {
            flops: flops_fraction(c, &counts),
            counts,
            accuracy,
        });
        progress(found.len(), settings.candidates.max(1));
        if best.as_ref().is_none_or(|(_, i)| found[*i].accuracy < accuracy) {
            best = Some((adapted, found.len() - 1));
        }
    }
    match best {
        Some((net, _)) => Ok((net, found)),
        None => Err(BackbonePruneError::Unreachable {
            target: settings.flops,
            now: flops_fraction(c, &c.backbone_channels),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    fn net(preset: Preset) -> CapsNet {
        let cfg = preset.config().for_input(3, 16, 16).with_types(4);
        CapsNet::init(&cfg, 5, &Device::flex()).unwrap()
    }

    fn images(seed: u64, n: usize) -> Tensor<4> {
        let mut rng = Rng::new(seed);
        let v: Vec<f32> = (0..n * 3 * 16 * 16).map(|_| rng.next_f64() as f32).collect();
        Tensor::from_data(TensorData::new(v, [n, 3, 16, 16]), &Device::flex())
    }

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn narrowed_equals_masked_and_meets_the_flops_target() {
        for preset in [Preset::ResnetCaps, Preset::MobilenetCaps] {
            // statistics of real batches, so silenced channels are not trivially zero
            let model = adapt_bn(net(preset), [images(1, 8)]);
            let mut rng = Rng::new(3);
            let counts = sample_counts(&model.config, 0.5, 0.1, &mut rng).unwrap();
            let kept = choose_kept(&group_importance(&model).unwrap(), &counts);
            let small = narrow(&model, &kept).unwrap();
            let masked = mask_channels(&model, &kept).unwrap();
            let x = images(2, 4);
            let d = max_diff(
                small.forward(x.clone(), false).lengths,
                masked.forward(x, false).lengths,
            );
            assert!(d < 1e-5, "{preset}: {d}");
            let f = flops_fraction(&model.config, &counts);
            assert!((f - 0.5).abs() <= FLOPS_TOLERANCE, "{preset}: {f}");
            assert!(small.param_count() < model.param_count());
            // the narrowed network saves and loads like any other
            let named: HashMap<_, _> = small.to_named().into_iter().collect();
            let back = CapsNet::from_named(&small.config, |k| named.get(k).cloned(), &Device::flex());
            assert!(back.is_ok(), "{preset}");
        }
    }

    #[test]
    fn adaptive_bn_changes_the_batchnorm_statistics_only() {
        let model = net(Preset::ResnetCaps);
        let before: HashMap<_, _> = model.to_named().into_iter().collect();
        let adapted = adapt_bn(model, [images(4, 8), images(5, 8)]);
        let after: HashMap<_, _> = adapted.to_named().into_iter().collect();
        assert_eq!(before.len(), after.len());
        let mut stats_changed = 0;
        for (name, t) in &before {
            let is_stat = name.ends_with(".bn.mean") || name.ends_with(".bn.var");
            if is_stat {
                stats_changed += usize::from(after[name] != *t);
            } else {
                assert_eq!(after[name], *t, "{name} changed");
            }
        }
        // every BatchNorm of the 9-block ResNet (stem, 18 block layers, 2 shortcuts)
        assert_eq!(stats_changed, 2 * 21);
        let bn = &adapted.backbone.as_ref().unwrap().stem.bn;
        assert!((bn.momentum - 0.1).abs() < 1e-12);
    }

    #[test]
    fn a_model_without_backbone_is_refused() {
        let model = CapsNet::init(&Preset::Tiny.config(), 1, &Device::flex()).unwrap();
        assert!(matches!(
            group_importance(&model),
            Err(BackbonePruneError::NoBackbone)
        ));
    }
}
