//! The slider of the inspection worker: pruning the dense model at a sparsity, the quick
//! first answer on [`super::QUICK_EVAL`] held-out images and its later refinement.

use std::time::Instant;

use super::{QUICK_EVAL, State};
use crate::data::Split;
use crate::inspect::messages::{InspectError, InspectEvent, PruneMethod, SliderResult};
use crate::model::CapsNet;
use crate::prune::backbone::flops_fraction;
use crate::prune::capsules::{capsule_importance, prune_capsules};
use crate::prune::magnitude::MagnitudeOrder;
use crate::prune::{apply_masks, compact, survival};
use crate::train::evaluate;
use crate::train::worker::EVAL_BATCH;

/// Test images the slider's backbone pruning re-estimates BatchNorm statistics on (the
/// picker's, else the held-out ones).
pub const BN_IMAGES: usize = 256;

/// A slider move's evaluation still to finish, on the model in use: the held-out images
/// not yet seen.
pub(super) struct Refine {
    /// Held-out images after the first [`QUICK_EVAL`].
    pub(super) rest: Split,
    /// Correct answers among the images already evaluated.
    pub(super) correct: usize,
    /// The first answer, to be refined.
    pub(super) result: SliderResult,
    pub(super) started: Instant,
}

impl State {
    /// The slider's pruning of the dense model: masked (not compacted), or for the
    /// backbone method the narrowed network.
    pub(super) fn pruned_copy(
        &mut self,
        sparsity: f64,
        method: PruneMethod,
    ) -> Result<CapsNet, InspectError> {
        let dense = self.dense.as_ref().ok_or(InspectError::NoModel)?;
        let refuse = |why: String| InspectError::Prune(why);
        match method {
            PruneMethod::Magnitude => {
                let order = self.order.get_or_insert_with(|| MagnitudeOrder::new(dense));
                let masks = order.masks(sparsity);
                Ok(apply_masks(dense.clone(), &masks.to_device(&self.device)))
            }
            PruneMethod::Capsules => {
                // a compact model is ranked and pruned as the dense network it stands for
                // (its removed capsules rank last and stay removed)
                let expanded = crate::prune::expand(dense);
                let dense: &CapsNet = &expanded;
                if self.importance.is_none() {
                    let held = self.held().ok_or_else(|| {
                        refuse("capsule pruning ranks capsules on held-out images: none loaded".into())
                    })?;
                    held.check_fits(dense.config.input(), dense.config.classes)
                        .map_err(|e| {
                            refuse(format!("capsule pruning ranks capsules on held-out digits: {e}"))
                        })?;
                    let sample: Vec<usize> = (0..held.len()).collect();
                    let (images, _) = held.batch(&sample, &self.device);
                    self.importance = Some(capsule_importance(dense, images));
                }
                let importance = self.importance.as_deref().unwrap_or_default();
                Ok(prune_capsules(dense.clone(), importance, sparsity))
            }
            PruneMethod::Backbone => {
                // the narrowed network itself: Keep and export need no masks for it. BatchNorm
                // is re-estimated on the model's own picker images when there are some (not
                // the held-out images the answer is measured on), else on the held-out ones.
                let fits = |s: &&Split| s.check_fits(dense.config.input(), dense.config.classes).is_ok();
                let own = match &self.own_images {
                    Some(Ok((pick, _))) => Some(pick).filter(|p| !p.is_empty()).filter(fits),
                    _ => None,
                };
                let images = own.or(self.held().filter(fits)).ok_or_else(|| {
                    refuse(
                        "backbone pruning re-estimates BatchNorm on test images: none fit this model".into(),
                    )
                })?;
                let sample: Vec<usize> = (0..images.len().min(BN_IMAGES)).collect();
                let images = || images.batch(&sample, &self.device).0;
                let how = (PruneMethod::Backbone, sparsity, 0.0);
                crate::prune::prune_to(dense.clone(), how, images, &self.device)
                    .map_err(|e| refuse(e.to_string()))
            }
        }
    }

    pub(super) fn prune(&mut self, sparsity: f64, method: PruneMethod) -> InspectEvent {
        let started = Instant::now();
        let pruned = match self.pruned_copy(sparsity, method) {
            Ok(p) => p,
            Err(e) => return InspectEvent::Failed(e),
        };
        // evaluate the compact form: same outputs, less work
        let fast = match compact(&pruned) {
            Ok(m) => m,
            Err(e) => return InspectEvent::Failed(InspectError::Prune(format!("cannot compact: {e}"))),
        };
        // held-out images that do not fit the model (other size or classes) give no accuracy
        let held = self
            .held()
            .filter(|h| h.check_fits(fast.config.input(), fast.config.classes).is_ok())
            .cloned();
        let surv = survival(&pruned);
        let sparsity_now = match method {
            PruneMethod::Backbone => 1.0 - flops_fraction(&pruned.config, &pruned.config.backbone_channels),
            _ => surv.dense_sparsity(&pruned.config),
        };
        let mut result = SliderResult {
            sparsity: sparsity_now,
            method,
            requested: sparsity,
            accuracy: None,
            evaluated: 0,
            held_out: held.as_ref().map_or(0, Split::len),
            alive_capsules: surv.map.alive_count(),
            alive_types: surv.map.alive_types(),
            alive: surv.map.alive,
            elapsed_ms: 0.0,
        };
        self.refine = None;
        if let Some(mut quick) = held {
            // the first QUICK_EVAL images answer now; the rest refine the answer later
            let rest = quick.split_off(quick.len().saturating_sub(QUICK_EVAL));
            let correct = self.correct_on(&fast, &quick);
            result.evaluated = quick.len();
            result.accuracy = Some(correct as f64 / quick.len().max(1) as f64);
            if !rest.is_empty() {
                self.refine = Some(Refine {
                    rest,
                    correct,
                    result: result.clone(),
                    started,
                });
            }
        }
        result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        self.current = Some(fast);
        self.pruned = Some(pruned);
        self.slider = (sparsity, method);
        InspectEvent::Pruned(result)
    }

    /// Images of `split` that `model` classifies correctly.
    pub(super) fn correct_on(&self, model: &CapsNet, split: &Split) -> usize {
        let e = evaluate(model, split, EVAL_BATCH, &self.device);
        (e.accuracy * e.images as f64).round() as usize
    }

    /// Evaluates the rest of the last slider move's held-out images and answers with the
    /// accuracy on all of them (`None` when nothing is left to refine).
    pub(super) fn refine_step(&mut self) -> Option<InspectEvent> {
        let r = self.refine.take()?;
        let model = self.current.as_ref()?;
        let answer = crate::threads::catch_panic(|| {
            let correct = r.correct + self.correct_on(model, &r.rest);
            let mut result = r.result;
            result.evaluated += r.rest.len();
            result.accuracy = Some(correct as f64 / result.evaluated.max(1) as f64);
            result.elapsed_ms = r.started.elapsed().as_secs_f64() * 1e3;
            InspectEvent::Pruned(result)
        });
        Some(answer.unwrap_or_else(|e| InspectEvent::Failed(InspectError::Panicked(e))))
    }
}
