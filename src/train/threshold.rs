//! LOBSTER's threshold step on the trainer's side: the global magnitude threshold search
//! run against the validation loss.

use burn::prelude::*;

use super::evaluate::evaluate_on;
use crate::data::DeviceSplit;
use crate::model::CapsNet;
use crate::prune::{Masks, apply_masks, lobster::threshold_search, max_magnitude, threshold_masks};

/// Images of the validation split used by each probe of the threshold search.
pub const THRESHOLD_PROBE_IMAGES: usize = 2000;
/// Bisection steps of the threshold search (on a log scale: see [`threshold_search`]).
pub const THRESHOLD_STEPS: usize = 12;

/// LOBSTER's threshold step: the largest global magnitude threshold whose loss on the
/// validation probe stays within `(1 + twt)` of the unpruned loss on the same probe, and the
/// masks it gives.
/// `probe` is on the model's device already (the first [`THRESHOLD_PROBE_IMAGES`] of the
/// validation split), so the search's many evaluations upload nothing.
pub(crate) fn lobster_threshold(
    model: &CapsNet,
    probe: &DeviceSplit,
    twt: f64,
    (batch, device): (usize, &Device),
) -> (Masks, f64) {
    let loss = |m: &CapsNet| evaluate_on(m, probe, batch, |_, _| {}).loss;
    let base = loss(model);
    let threshold = threshold_search(max_magnitude(model), base, twt, THRESHOLD_STEPS, |t| {
        let masks = threshold_masks(model, t).to_device(device);
        loss(&apply_masks(model.clone(), &masks))
    });
    (threshold_masks(model, threshold), threshold)
}
