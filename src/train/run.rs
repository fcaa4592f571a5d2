//! One training run on the trainer thread, epoch by epoch: setup (device, data, network,
//! resume), the steps with their loss read back every few steps (and a fallback when it
//! is not finite), pruning at the end of an epoch, evaluation and the checkpoint.

use std::time::Instant;

use burn::optim::record::OptimizerRecord;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;

use super::evaluate::evaluate_on;
use super::messages::{
    EpochMetrics, Event, PruneSchedule, StepReport, TrainError, TrainRequest, gmp_sparsity,
};
use super::metrics::{write_metrics, write_run_config};
use super::plateau::Plateau;
use super::resume::{RunState, prune_old_resume, write_resume};
use super::setup::{build_model, check_before_start, kept_zeros, load_data, resident_validation};
use super::step::{StepPruning, finite_probe, train_step};
use super::threshold::lobster_threshold;
use super::worker::{EVAL_BATCH, Flow, GPU_EVAL_BATCH, Run};
use crate::data::augment::batch_seed;
use crate::data::{Augment, Dataset, DeviceSplit};
use crate::device::{self, DeviceKindUsed, SelectedDevice};
use crate::export::{ModelInfo, save_model};
use crate::model::CapsNet;
use crate::prune::survival::{Survival, layer_sparsity_named};
use crate::prune::{Masks, apply_masks, magnitude_masks, survival};

/// How often a run may fall back to its last finite state before it gives up.
const MAX_ROLLBACKS: usize = 3;
/// Factor applied to the learning rate at each fallback.
const ROLLBACK_LR_FACTOR: f64 = 0.1;

/// Everything a run carries from epoch to epoch.
struct Loop {
    device: Device,
    ad: Device,
    data: Dataset,
    /// The validation split on the device and its first [`THRESHOLD_PROBE_IMAGES`] (LOBSTER's
    /// threshold probe), uploaded once per run; `None` without a validation split.
    validation: Option<(DeviceSplit, DeviceSplit)>,
    /// The training split on the training device, when batches need no host augmentation.
    train_resident: Option<DeviceSplit>,
    /// The test split on the device, evaluated after every epoch.
    test_resident: DeviceSplit,
    /// Images per evaluation batch: larger on a GPU.
    eval_batch: usize,
    /// Whether the first step still has to compile and tune GPU kernels.
    warm_up: bool,
    /// The request's augmentation, resolved for the data.
    augment: Augment,
    batch: usize,
    total_steps: usize,
    model: CapsNet,
    optim: ModuleOptimizer,
    pruning: StepPruning,
    lobster: Plateau,
    early_stop: Plateau,
    history: Vec<EpochMetrics>,
    global_step: usize,
    first_epoch: usize,
    /// The network after the last read-back whose loss was finite.
    last_good: CapsNet,
    rollbacks: usize,
    started: Instant,
    /// The preset the checkpoints name: the start file's own (the resumed checkpoint's or
    /// `--init`'s), else `--preset`.
    preset: Option<String>,
}

/// Sums over the read-backs of one epoch.
#[derive(Default)]
struct EpochSums {
    loss: f64,
    correct: f64,
    images: usize,
    /// The learning rate of the epoch's first step.
    first_lr: f64,
}

/// Loss and correct predictions accumulated on the device since the last read-back.
struct Window {
    sums: Option<(Tensor<1>, Tensor<1, Int>)>,
    steps: usize,
    images: usize,
    start: Instant,
}

impl Window {
    fn new() -> Self {
        Self {
            sums: None,
            steps: 0,
            images: 0,
            start: Instant::now(),
        }
    }
}

impl Run<'_> {
    /// Trains as `req` asks, reporting through events.
    pub(super) fn train(&mut self, req: &TrainRequest) -> Result<(), TrainError> {
        let mut l = self.prepare(req)?;
        for epoch in l.first_epoch..=req.epochs {
            let epoch_start = Instant::now();
            let Some(sums) = self.train_epoch(req, &mut l, epoch)? else {
                return self.finish(true, false, &l);
            };
            self.prune_after_epoch(req, &mut l, epoch);
            if req.patience.is_some()
                && let Some((validation, _)) = &l.validation
            {
                let loss = evaluate_on(&l.model.valid(), validation, l.eval_batch, |_, _| {}).loss;
                l.early_stop.observe(loss);
            }
            self.end_epoch(req, &mut l, epoch, sums, epoch_start)?;
            if req.patience.is_some_and(|p| l.early_stop.stale >= p) {
                return self.finish(false, true, &l);
            }
        }
        self.finish(false, false, &l)
    }

    /// Device, data, network and optimiser; the run folder; the state of a resumed run.
    fn prepare(&mut self, req: &TrainRequest) -> Result<Loop, TrainError> {
        req.validate()?;
        let started = Instant::now();
        let SelectedDevice {
            device,
            name,
            reason,
            kind,
        } = device::select(req.device)?;
        self.emit.send(Event::Device {
            name: name.clone(),
            reason,
        });
        // the app closing also stops an image folder's decoding
        let closing = self.closing_flag();
        let go_on = || !closing.load(std::sync::atomic::Ordering::Relaxed);
        let (data, validation) = load_data(req, self.emit, &go_on)?;
        let ad = device.clone().autodiff();
        let (mut model, preset) = build_model(req, &data, &device, &ad)?;
        let optimizer = check_before_start(req, &mut model)?;
        let batch = req.batch.max(1);
        let total_steps = data.train.len().div_ceil(batch).saturating_mul(req.epochs);
        self.emit.send(Event::Started {
            train_images: data.train.len(),
            test_images: data.test.len(),
            total_steps,
            params: model.param_count(),
            capsules: model.capsules(),
        });
        if let Some(dir) = &req.out_dir {
            write_run_config(dir, req, &model.config, &name)?;
        }
        self.lr = req.lr;
        let tolerance = match req.prune {
            PruneSchedule::Lobster { tolerance, .. } => tolerance,
            _ => 0.0,
        };
        let augment = req.augment.resolve(data.train.channels);
        let on_gpu = kind == DeviceKindUsed::Wgpu;
        let validation = resident_validation(&validation, &device);
        let mut l = Loop {
            // a training split over the device's largest buffer is batched on the host
            train_resident: (augment == Augment::None && DeviceSplit::fits_whole(&data.train, &ad))
                .then(|| DeviceSplit::upload(&data.train, &ad)),
            test_resident: DeviceSplit::upload(&data.test, &device),
            eval_batch: if on_gpu { GPU_EVAL_BATCH } else { EVAL_BATCH },
            warm_up: on_gpu,
            device,
            ad,
            augment,
            data,
            validation,
            batch,
            total_steps,
            last_good: model.clone(),
            model,
            optim: AdamConfig::new().init(),
            pruning: StepPruning {
                masks: None,
                lobster_lambda: None,
            },
            lobster: Plateau::new(tolerance),
            early_stop: Plateau::new(0.0),
            history: Vec::new(),
            global_step: 0,
            first_epoch: 1,
            rollbacks: 0,
            started,
            preset,
        };
        // a resumed run takes its masks from its checkpoint instead (`restore`)
        if req.init.is_some() && req.resume.is_none() {
            l.pruning.masks = kept_zeros(&l.model, &l.ad);
        }
        if let Some(record) = optimizer {
            self.restore(req, &mut l, record);
        }
        Ok(l)
    }

    /// Puts a resumed run back where its checkpoint left it ([`check_before_start`] has read
    /// Adam's record and matched the parameters), and reports its earlier epochs.
    fn restore(&mut self, req: &TrainRequest, l: &mut Loop, record: OptimizerRecord) {
        let Some(r) = &req.resume else {
            return;
        };
        let s = &r.state;
        l.optim = std::mem::replace(&mut l.optim, AdamConfig::new().init()).load_record(record);
        self.lr = s.base_lr;
        l.lobster = s.lobster;
        l.early_stop = s.early_stop;
        l.pruning.masks = s
            .masks_active
            .then(|| Masks::from_nonzero(&l.model.valid()).to_device(&l.ad));
        l.history = s.history.clone();
        l.global_step = s.global_step;
        l.rollbacks = s.rollbacks;
        l.first_epoch = s.epoch + 1;
        l.last_good = l.model.clone();
        if !l.history.is_empty() {
            self.emit.send(Event::EarlierEpochs {
                epochs: l.history.clone(),
                steps_per_epoch: l.global_step / l.history.len(),
            });
        }
    }

    /// One pass over the training set; `None` when a stop command ended it.
    fn train_epoch(
        &mut self,
        req: &TrainRequest,
        l: &mut Loop,
        epoch: usize,
    ) -> Result<Option<EpochSums>, TrainError> {
        if let PruneSchedule::Lobster {
            lambda, lambda_decay, ..
        } = req.prune
        {
            l.pruning.lobster_lambda = Some(lambda * lambda_decay.powi(epoch as i32 - 1));
        }
        let readback = req.readback_every.max(1);
        let mut sums = EpochSums::default();
        let mut window = Window::new();
        let batches = l
            .data
            .train
            .batches(l.batch, Some(req.seed.wrapping_add(epoch as u64)));
        // with the split on the device, the epoch's order goes up once and batches are cut there
        let resident = l.train_resident.clone().map(|d| {
            let order = d.order(&batches.concat());
            (d, order)
        });
        let mut start = 0;
        let steps = batches.len();
        for (i, indices) in batches.iter().enumerate() {
            let factor = req
                .lr_schedule
                .factor(req.lr_decay, (epoch, req.epochs), (i, steps));
            if let Flow::Stop = self.poll() {
                return Ok(None);
            }
            // the base rate may have been changed by a command
            let lr = self.lr * factor;
            if i == 0 {
                sums.first_lr = lr;
            }
            let (images, labels) = match &resident {
                Some((d, order)) => d.select(order.clone().slice(start..start + indices.len())),
                None => {
                    let seed = batch_seed(req.seed, epoch, i);
                    l.data.train.batch_augmented(indices, &l.ad, l.augment, seed)
                }
            };
            start += indices.len();
            // the first report of a GPU run comes after its first step alone, so the wait
            // for kernels to compile is reported as such
            let first = std::mem::take(&mut l.warm_up);
            if first {
                self.emit.send(Event::WarmingUp);
            }
            let model = std::mem::replace(&mut l.model, l.last_good.clone());
            let (next, stats) = train_step(model, &mut l.optim, lr, images, labels, &l.pruning);
            l.model = next;
            window.sums = Some(match window.sums.take() {
                Some((s, c)) => (s + stats.loss_sum, c + stats.hits),
                None => (stats.loss_sum, stats.hits),
            });
            window.steps += 1;
            window.images += indices.len();
            l.global_step += 1;
            if first || window.steps == readback || i + 1 == steps {
                self.read_back(l, &mut window, &mut sums, (epoch, i + 1, steps), factor)?;
                window = Window::new();
            }
        }
        Ok(Some(sums))
    }

    /// Reads the window's loss back from the device and reports it; a non-finite loss
    /// sends the run back to its last finite state with a lower learning rate.
    fn read_back(
        &mut self,
        l: &mut Loop,
        window: &mut Window,
        sums: &mut EpochSums,
        (epoch, step, steps): (usize, usize, usize),
        factor: f64,
    ) -> Result<(), TrainError> {
        let Some((loss, hits)) = window.sums.take() else {
            return Ok(());
        };
        // the model that would become the last good state must be finite too
        let loss_sum = (loss + finite_probe(&l.model)).into_scalar::<f64>();
        if !loss_sum.is_finite() {
            l.rollbacks += 1;
            if l.rollbacks > MAX_ROLLBACKS {
                return Err(TrainError::Diverged(format!(
                    "training diverged: the loss became non-finite {} times (last at epoch {epoch}, step {step}), even at learning rate {:.3e}; {} (nothing non-finite was saved)",
                    l.rollbacks,
                    self.lr * factor,
                    lower_lr_advice(l.first_epoch > 1)
                )));
            }
            l.model = l.last_good.clone();
            l.optim = AdamConfig::new().init();
            self.lr *= ROLLBACK_LR_FACTOR;
            self.emit.send(Event::RolledBack {
                epoch,
                step_in_epoch: step,
                lr: self.lr * factor,
            });
            return Ok(());
        }
        l.last_good = l.model.clone();
        let correct = hits.into_scalar::<i64>() as f64;
        sums.loss += loss_sum;
        sums.correct += correct;
        sums.images += window.images;
        let secs = window.start.elapsed().as_secs_f64().max(1e-9);
        self.emit.progress(Event::Step(StepReport {
            epoch,
            step_in_epoch: step,
            steps_per_epoch: steps,
            global_step: l.global_step,
            total_steps: l.total_steps,
            loss: loss_sum / window.images as f64,
            accuracy: correct / window.images as f64,
            images_per_s: window.images as f64 / secs,
        }));
        Ok(())
    }

    /// Gradual magnitude pruning, or LOBSTER's threshold step once the validation loss has
    /// waited `pwe` epochs without improving.
    fn prune_after_epoch(&mut self, req: &TrainRequest, l: &mut Loop, epoch: usize) {
        let masks = match req.prune {
            PruneSchedule::Gmp { target } => {
                let masks = magnitude_masks(&l.model, gmp_sparsity(target, epoch, req.epochs));
                // weights already pruned (an earlier step, or a pruned --init) stay pruned
                match &l.pruning.masks {
                    Some(_) => masks.and(&Masks::from_nonzero(&l.model.valid())),
                    None => masks,
                }
            }
            PruneSchedule::Lobster { pwe, twt, .. } if l.validation.is_some() => {
                let Some((validation, probe)) = &l.validation else {
                    return;
                };
                let snapshot = l.model.valid();
                let val_loss = evaluate_on(&snapshot, validation, l.eval_batch, |_, _| {}).loss;
                l.lobster.observe(val_loss);
                if l.lobster.stale < pwe {
                    return;
                }
                let (masks, threshold) = lobster_threshold(&snapshot, probe, twt, (l.eval_batch, &l.device));
                l.lobster.reset();
                self.emit.send(Event::Pruned {
                    epoch,
                    threshold,
                    sparsity: masks.sparsity(),
                });
                masks
            }
            _ => return,
        };
        let on_device = masks.to_device(&l.ad);
        let model = std::mem::replace(&mut l.model, l.last_good.clone());
        l.model = apply_masks(model, &on_device);
        // a rollback in the next epoch returns to the pruned model, never to the weights
        // this step removed
        l.last_good = l.model.clone();
        l.pruning.masks = Some(on_device);
    }

    /// Evaluates the epoch, reports its metrics and writes the checkpoint.
    fn end_epoch(
        &mut self,
        req: &TrainRequest,
        l: &mut Loop,
        epoch: usize,
        sums: EpochSums,
        epoch_start: Instant,
    ) -> Result<(), TrainError> {
        self.emit.send(Event::Evaluating { epoch });
        let valid = l.model.valid();
        let eval = evaluate_on(&valid, &l.test_resident, l.eval_batch, |_, _| {});
        if !eval.loss.is_finite() {
            return Err(TrainError::Diverged(format!(
                "training diverged: the test loss after epoch {epoch} is not finite (epoch {epoch} was not saved); {}",
                lower_lr_advice(req.resume.is_some())
            )));
        }
        let surv = survival(&valid);
        let kept = (sums.images > 0).then_some(sums.images as f64);
        let metrics = EpochMetrics {
            epoch,
            train_loss: kept.map(|n| sums.loss / n),
            train_accuracy: kept.map(|n| sums.correct / n),
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            lr: sums.first_lr,
            epoch_s: epoch_start.elapsed().as_secs_f64(),
            sparsity: surv.dense_sparsity(&valid.config),
            layer_sparsity: surv.dense_layer_sparsity(&valid.config),
            alive_capsules: surv.map.alive_count(),
            capsules: surv.map.capsules(),
            alive_types: surv.map.alive_types(),
            alive: surv.map.alive.clone(),
        };
        l.history.push(metrics.clone());
        self.emit.send(Event::Epoch(metrics));
        self.checkpoint(req, l, &valid, &surv)
    }

    /// Writes the resume pair, then the model and the metrics, into the run folder.
    fn checkpoint(
        &mut self,
        req: &TrainRequest,
        l: &Loop,
        valid: &CapsNet,
        surv: &Survival,
    ) -> Result<(), TrainError> {
        let Some(dir) = &req.out_dir else {
            return Ok(());
        };
        let Some(last) = l.history.last() else {
            return Ok(());
        };
        let epoch = last.epoch;
        let path = dir.join("model.safetensors");
        let info = ModelInfo {
            classes: l.data.classes.clone(),
            dataset: Some(l.data.name.clone()),
            preset: l.preset.clone(),
            epochs: Some(epoch),
            test_accuracy: Some(last.test_accuracy),
            sparsity: Some(last.sparsity),
            layer_sparsity: Some(layer_sparsity_named(surv, &valid.config)),
        };
        let state = RunState {
            epoch,
            global_step: l.global_step,
            base_lr: self.lr,
            lobster: l.lobster,
            early_stop: l.early_stop,
            masks_active: l.pruning.masks.is_some(),
            param_ids: l.model.param_ids(),
            history: l.history.clone(),
            rollbacks: l.rollbacks,
        };
        let record = l
            .optim
            .to_record()
            .into_bytes()
            .map_err(|e| TrainError::File(format!("optimizer record: {e}")))?;
        // the resume pair first, the model last: the model's epoch names its pair
        write_resume(dir, req, &state, &record)?;
        save_model(valid, &info, &path)?;
        write_metrics(dir, &l.history)?;
        prune_old_resume(dir, epoch);
        self.emit.send(Event::Checkpoint { path, epoch });
        Ok(())
    }

    /// Reports the end of the run.
    fn finish(&self, stopped: bool, early_stopped: bool, l: &Loop) -> Result<(), TrainError> {
        self.emit.send(Event::Finished {
            stopped,
            early_stopped,
            epochs: l.history.len(),
            test_accuracy: l.history.last().map(|m| m.test_accuracy),
            wall_s: l.started.elapsed().as_secs_f64(),
        });
        Ok(())
    }
}

/// What to do about a diverged run: a resumed run keeps its learning rate (`--lr` cannot be
/// given with `--resume`), so its model is where a new run starts.
fn lower_lr_advice(resumed: bool) -> &'static str {
    if resumed {
        "train a new run from its model with --init and a lower --lr"
    } else {
        "try a lower --lr"
    }
}
