//! Fine-tuning under fixed masks (after structured or magnitude pruning).

use burn::optim::AdamConfig;
use burn::prelude::*;

use super::step::{StepPruning, train_step};
use crate::data::Split;
use crate::model::CapsNet;
use crate::prune::{Masks, apply_masks};

/// Settings of a fine-tuning run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinetuneSettings {
    /// Epochs over the training split.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for FinetuneSettings {
    /// One epoch at batch 32 and lr 1e-3, shuffled with seed 7 (what `prune`, `sweep` and
    /// the app's "Keep" use unless told otherwise).
    fn default() -> Self {
        Self {
            epochs: 1,
            batch: 32,
            lr: 1e-3,
            seed: 7,
        }
    }
}

/// Trains `model` for a few epochs with `masks` re-applied after every step, so pruned
/// weights stay zero. `progress(step, total)` is called after each step. Returns the
/// network on `device` without autodiff.
pub fn finetune(
    model: CapsNet,
    masks: &Masks,
    train: &Split,
    settings: FinetuneSettings,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> CapsNet {
    finetune_until(model, masks, train, settings, device, |done, total| {
        progress(done, total);
        true
    })
    .0
}

/// [`finetune`] that stops early when `go_on(step, total)` returns false. Returns the
/// network as it stands and whether every step ran.
pub fn finetune_until(
    model: CapsNet,
    masks: &Masks,
    train: &Split,
    settings: FinetuneSettings,
    device: &Device,
    mut go_on: impl FnMut(usize, usize) -> bool,
) -> (CapsNet, bool) {
    let ad = device.clone().autodiff();
    let on_device = masks.to_device(&ad);
    let mut model = apply_masks(model.fork(&ad).train(), &on_device);
    let pruning = StepPruning {
        masks: Some(on_device),
        lobster_lambda: None,
    };
    let mut optim = AdamConfig::new().init();
    let per_epoch = train.len().div_ceil(settings.batch.max(1));
    let total = per_epoch.saturating_mul(settings.epochs);
    let mut done = 0;
    for epoch in 0..settings.epochs {
        for indices in train.batches(settings.batch, Some(settings.seed.wrapping_add(epoch as u64))) {
            let (x, y) = train.batch(&indices, &ad);
            model = train_step(model, &mut optim, settings.lr, x, y, &pruning).0;
            done += 1;
            if !go_on(done, total) {
                return (model.valid(), false);
            }
        }
    }
    (model.valid(), true)
}
