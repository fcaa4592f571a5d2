//! Evaluation of a model on a split: loss and accuracy.

use burn::prelude::*;

use crate::data::{DeviceSplit, Split};
use crate::model::CapsNet;

/// Loss and accuracy over a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean total loss (margin + reconstruction).
    pub loss: f64,
    /// Fraction of images classified correctly.
    pub accuracy: f64,
    /// Images evaluated.
    pub images: usize,
}

/// Evaluates `model` (a validation copy, without autodiff) on `split` in batches of `batch`.
/// The split is uploaded once and values stay on the device until the end, so the device
/// is read once.
pub fn evaluate(model: &CapsNet, split: &Split, batch: usize, device: &Device) -> Evaluation {
    evaluate_with_progress(model, split, batch, device, |_, _| {})
}

/// [`evaluate`] calling `progress(done, total)` after each batch is queued.
pub fn evaluate_with_progress(
    model: &CapsNet,
    split: &Split,
    batch: usize,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> Evaluation {
    evaluate_on(model, &DeviceSplit::upload(split, device), batch, progress)
}

/// [`evaluate_with_progress`] on a split already on the model's device.
pub fn evaluate_on(
    model: &CapsNet,
    split: &DeviceSplit,
    batch: usize,
    mut progress: impl FnMut(usize, usize),
) -> Evaluation {
    let mut loss_sum: Option<Tensor<1>> = None;
    let mut correct: Option<Tensor<1, Int>> = None;
    // fewer images per pass where the device's buffers could not hold a batch's tensors
    let batch = model.batch_on_device(batch);
    for start in (0..split.len()).step_by(batch) {
        let end = (start + batch).min(split.len());
        let (images, labels) = split.range(start, end);
        let n = end - start;
        let out = model.forward(images.clone(), false);
        let pred = out.lengths.clone().argmax(1).reshape([n]);
        let hits = pred.equal(labels.clone()).int().sum();
        // NaN or infinite outputs make the loss non-finite, though the margin loss's ReLUs
        // would turn them into 0
        let outputs_probe = super::step::zero_unless_finite(out.lengths.clone());
        let loss = model.loss(&out, images, labels).total * n as f64 + outputs_probe;
        loss_sum = Some(match loss_sum {
            Some(s) => s + loss,
            None => loss,
        });
        correct = Some(match correct {
            Some(c) => c + hits,
            None => hits,
        });
        progress(end, split.len());
    }
    let images = split.len().max(1);
    let loss = loss_sum.map(|s| s.into_scalar::<f64>()).unwrap_or(0.0);
    let correct = correct.map(|c| c.into_scalar::<i64>()).unwrap_or(0);
    Evaluation {
        loss: loss / images as f64,
        accuracy: correct as f64 / images as f64,
        images: split.len(),
    }
}
