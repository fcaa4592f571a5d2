//! Fine-tuning under fixed masks (after structured or magnitude pruning).

use burn::optim::AdamConfig;
use burn::prelude::*;

use super::step::{StepPruning, train_step};
use crate::data::augment::batch_seed;
use crate::data::{Augment, Split};
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
    /// Shuffling seed (and the augmentation's).
    pub seed: u64,
    /// How training images are varied, as in training: `Auto` is crop-flip for colour
    /// images and none for grey ones.
    pub augment: Augment,
}

impl Default for FinetuneSettings {
    /// One epoch at batch 32 and lr 1e-3, shuffled with seed 7, augmented as training is by
    /// default: the app's "Keep" (its epochs from the form); `prune` and `sweep` take all
    /// but the seed from their command line (`FinetuneArgs`).
    fn default() -> Self {
        Self {
            epochs: 1,
            batch: 32,
            lr: 1e-3,
            seed: 7,
            augment: Augment::Auto,
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
    let augment = settings.augment.resolve(train.channels);
    let mut done = 0;
    for epoch in 0..settings.epochs {
        let order = train.batches(settings.batch, Some(settings.seed.wrapping_add(epoch as u64)));
        for (i, indices) in order.into_iter().enumerate() {
            let seed = batch_seed(settings.seed, epoch, i);
            let (x, y) = train.batch_augmented(&indices, &ad, augment, seed);
            model = train_step(model, &mut optim, settings.lr, x, y, &pruning).0;
            done += 1;
            if !go_on(done, total) {
                return (model.valid(), false);
            }
        }
    }
    (model.valid(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    /// `n` images of `channels x 32 x 32` with varied pixels and labels.
    fn split(n: usize, channels: usize) -> Split {
        let size = channels * 32 * 32;
        Split {
            pixels: (0..n * size).map(|i| (i * 37 % 251) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            height: 32,
            width: 32,
            channels,
        }
    }

    /// The weights after fine-tuning a fresh tiny network on `data` with `augment`.
    fn tuned(data: &Split, augment: Augment) -> Vec<f32> {
        let dev = Device::flex();
        let cfg = Preset::Tiny
            .config()
            .for_input(data.channels, 32, 32)
            .with_decoder_hidden(vec![]);
        let net = CapsNet::init(&cfg, 3, &dev).unwrap();
        let masks = Masks::from_nonzero(&net);
        let settings = FinetuneSettings {
            batch: 4,
            augment,
            ..FinetuneSettings::default()
        };
        let net = finetune(net, &masks, data, settings, &dev, |_, _| {});
        net.to_named().into_iter().flat_map(|(_, t)| t.values).collect()
    }

    #[test]
    fn auto_augments_colour_images_and_leaves_grey_ones_as_they_are() {
        let colour = split(8, 3);
        let none = tuned(&colour, Augment::None);
        assert_ne!(
            tuned(&colour, Augment::Auto),
            none,
            "colour images were not varied"
        );
        assert_eq!(tuned(&colour, Augment::CROP4_FLIP), tuned(&colour, Augment::Auto));
        assert_eq!(
            tuned(&colour, Augment::None),
            none,
            "fine-tuning is not repeatable"
        );
        let grey = split(8, 1);
        assert_eq!(tuned(&grey, Augment::Auto), tuned(&grey, Augment::None));
    }
}
