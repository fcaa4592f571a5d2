//! The trainer thread: it owns the model and the optimiser, takes [`Command`]s and sends
//! [`Event`]s over bounded channels.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Instant;

use anyhow::Context;
use burn::optim::AdamConfig;
use burn::optim::record::OptimizerRecord;
use burn::prelude::*;
use burn::tensor::Bytes;

use super::evaluate::evaluate;
use super::handle::WorkerHandle;
use super::messages::{Command, EpochMetrics, Event, StepReport, TrainRequest};
use super::messages::{PruneSchedule, gmp_sparsity};
use super::metrics::{write_metrics, write_run_config};
use super::plateau::Plateau;
use super::resume::{RunState, prune_old_resume, write_resume};
use super::step::{StepPruning, train_step};
use crate::data::Dataset;
use crate::data::Split;
use crate::data::augment::batch_seed;
use crate::device::{self, SelectedDevice};
use crate::export::{ModelInfo, save_model};
use crate::model::CapsNet;
use crate::prune::{
    Masks, apply_masks, lobster::threshold_search, magnitude_masks, max_magnitude, survival, threshold_masks,
};

/// Images of the validation split used by each probe of the threshold search.
pub const THRESHOLD_PROBE_IMAGES: usize = 2000;
/// Bisection steps of the threshold search.
pub const THRESHOLD_STEPS: usize = 12;

/// LOBSTER's threshold step: the largest global magnitude threshold whose loss on the
/// validation probe stays within `(1 + twt)` of the unpruned loss on the same probe, and the
/// masks it gives.
fn lobster_threshold(model: &CapsNet, validation: &Split, twt: f64, device: &Device) -> (Masks, f64) {
    let mut probe = validation.clone();
    probe.truncate(THRESHOLD_PROBE_IMAGES);
    let base = evaluate(model, &probe, EVAL_BATCH, device).loss;
    let threshold = threshold_search(max_magnitude(model), base, twt, THRESHOLD_STEPS, |t| {
        let masks = threshold_masks(model, t).to_device(device);
        evaluate(&apply_masks(model.clone(), &masks), &probe, EVAL_BATCH, device).loss
    });
    (threshold_masks(model, threshold), threshold)
}

/// Capacity of the command channel.
pub const COMMAND_CAPACITY: usize = 16;
/// Capacity of the event channel; progress events are dropped when it is full.
pub const EVENT_CAPACITY: usize = 256;
/// Batch size used for evaluation.
pub const EVAL_BATCH: usize = 250;

/// Callback run after each event is sent (the app passes `ctx.request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Handle to the trainer thread (named `sparsecaps-trainer`).
pub type Trainer = WorkerHandle<Command, Event>;

impl WorkerHandle<Command, Event> {
    /// Starts the trainer thread.
    pub fn spawn(waker: Option<Waker>) -> std::io::Result<Self> {
        WorkerHandle::start(
            "sparsecaps-trainer",
            (COMMAND_CAPACITY, EVENT_CAPACITY),
            Command::Shutdown,
            move |commands, events| worker_loop(&commands, &Emitter { tx: events, waker }),
        )
    }
}

struct Emitter {
    tx: SyncSender<Event>,
    waker: Option<Waker>,
}

impl Emitter {
    /// Sends an event that must arrive (blocks while the queue is full).
    fn send(&self, event: Event) {
        let _ = self.tx.send(event);
        self.wake();
    }

    /// Sends a progress event, dropping it if the queue is full.
    fn progress(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }
}

/// How often a run may fall back to its last finite state before it gives up.
const MAX_ROLLBACKS: usize = 3;
/// Factor applied to the learning rate at each fallback.
const ROLLBACK_LR_FACTOR: f64 = 0.1;

fn worker_loop(commands: &Receiver<Command>, emit: &Emitter) {
    while let Ok(cmd) = commands.recv() {
        match cmd {
            Command::Start(req) => {
                let mut run = Run::new(commands, emit);
                match super::handle::catch_panic(|| run.train(&req)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => emit.send(Event::Failed(crate::errors::error_chain(&e))),
                    Err(panic) => emit.send(Event::Failed(panic)),
                }
                if run.shutdown {
                    break;
                }
            }
            Command::Shutdown => break,
            Command::Pause | Command::Resume | Command::Stop | Command::SetLearningRate(_) => {}
        }
    }
}

/// What the command queue says to do next.
enum Flow {
    Continue,
    Stop,
}

struct Run<'a> {
    commands: &'a Receiver<Command>,
    emit: &'a Emitter,
    lr: f64,
    shutdown: bool,
}

impl<'a> Run<'a> {
    fn new(commands: &'a Receiver<Command>, emit: &'a Emitter) -> Self {
        Self {
            commands,
            emit,
            lr: 0.0,
            shutdown: false,
        }
    }

    fn handle(&mut self, cmd: Command, paused: &mut bool) -> Flow {
        match cmd {
            Command::Pause if !*paused => {
                *paused = true;
                self.emit.send(Event::Paused);
            }
            Command::Resume if *paused => {
                *paused = false;
                self.emit.send(Event::Resumed);
            }
            Command::Stop => return Flow::Stop,
            Command::Shutdown => {
                self.shutdown = true;
                return Flow::Stop;
            }
            Command::SetLearningRate(lr) if lr.is_finite() && lr > 0.0 => self.lr = lr,
            _ => {}
        }
        Flow::Continue
    }

    /// Handles queued commands; blocks while paused.
    fn poll(&mut self) -> Flow {
        let mut paused = false;
        loop {
            let cmd = if paused {
                match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => return Flow::Stop,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty) => return Flow::Continue,
                    Err(TryRecvError::Disconnected) => return Flow::Stop,
                }
            };
            if let Flow::Stop = self.handle(cmd, &mut paused) {
                return Flow::Stop;
            }
        }
    }

    fn train(&mut self, req: &TrainRequest) -> anyhow::Result<()> {
        let started = Instant::now();
        let SelectedDevice {
            device, name, reason, ..
        } = device::select(req.device)?;
        self.emit.send(Event::Device {
            name: name.clone(),
            reason,
        });
        let mut data = Dataset::load(&req.data)?;
        data.limit(req.limit_train, req.limit_test);
        let held_out = match req.validation {
            Some(n) => n,
            None if req.prune.needs_validation() || req.patience.is_some() => {
                (data.train.len() / 10).min(5000)
            }
            None => 0,
        };
        if held_out >= data.train.len() {
            anyhow::bail!(
                "validation split of {held_out} leaves no training images (of {})",
                data.train.len()
            );
        }
        let validation = data.train.split_off(held_out);
        let mut pruning = StepPruning {
            masks: None,
            lobster_lambda: match req.prune {
                PruneSchedule::Lobster { lambda, .. } => Some(lambda),
                _ => None,
            },
        };
        let mut lobster_plateau = Plateau::new(match req.prune {
            PruneSchedule::Lobster { tolerance, .. } => tolerance,
            _ => 0.0,
        });
        let mut early_stop = Plateau::new(0.0);
        let config = req
            .preset
            .config()
            .for_input(data.train.channels, data.train.height, data.train.width);
        let config = if req.no_decoder {
            config.with_decoder_hidden(vec![])
        } else {
            config
        };
        let ad = device.clone().autodiff();
        let mut model = match &req.init {
            Some(path) => {
                let (m, _) = crate::export::load_model(path, &device)?;
                let c = &m.config;
                if m.compact.is_some() {
                    anyhow::bail!(
                        "{}: a compact model cannot be trained; start from its dense original",
                        path.display()
                    );
                }
                data.check_fits(c.input(), c.classes)
                    .with_context(|| path.display().to_string())?;
                m.fork(&ad).train()
            }
            None => CapsNet::init(&config, req.seed, &ad)?,
        };
        data.check_fits(model.config.input(), model.config.classes)?;
        let mut optim = AdamConfig::new().init();
        let batch = req.batch.max(1);
        model.config.check_batch(batch)?;
        let steps_per_epoch = data.train.len().div_ceil(batch);
        let total_steps = steps_per_epoch * req.epochs;
        self.emit.send(Event::Started {
            train_images: data.train.len(),
            test_images: data.test.len(),
            total_steps,
            params: model.param_count(),
            capsules: model.capsules(),
        });
        if let Some(dir) = &req.out_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create run folder {}: {e}", dir.display()))?;
            write_run_config(dir, req, &model.config, &name)?;
        }
        self.lr = req.lr;
        let readback = req.readback_every.max(1);
        let mut history: Vec<EpochMetrics> = Vec::new();
        let mut global_step = 0;
        let mut first_epoch = 1;
        if let Some(r) = &req.resume {
            let s = &r.state;
            if !model.set_param_ids(&s.param_ids) {
                anyhow::bail!("the resume record does not match the checkpoint's parameters");
            }
            let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(r.optimizer.clone()))
                .map_err(|e| anyhow::anyhow!("optimizer record: {e}"))?;
            optim = optim.load_record(record);
            self.lr = s.base_lr;
            lobster_plateau = s.lobster;
            early_stop = s.early_stop;
            if s.masks_active {
                pruning.masks = Some(Masks::from_nonzero(&model.valid()).to_device(&ad));
            }
            history = s.history.clone();
            global_step = s.global_step;
            first_epoch = s.epoch + 1;
        }
        // the model after the last readback whose loss was finite, and how often the run
        // has fallen back to it
        let mut last_good = model.clone();
        let mut rollbacks = 0;
        for epoch in first_epoch..=req.epochs {
            let epoch_start = Instant::now();
            let decay = req.lr_decay.powi(epoch as i32 - 1);
            let mut lr = self.lr * decay;
            if let PruneSchedule::Lobster {
                lambda, lambda_decay, ..
            } = req.prune
            {
                pruning.lobster_lambda = Some(lambda * lambda_decay.powi(epoch as i32 - 1));
            }
            let mut window: Option<(Tensor<1>, Tensor<1, Int>)> = None;
            let mut window_steps = 0;
            let mut window_images = 0;
            let mut window_start = Instant::now();
            let mut epoch_loss = 0.0;
            let mut epoch_correct = 0.0;
            let mut epoch_images = 0;
            let batches = data
                .train
                .batches(batch, Some(req.seed.wrapping_add(epoch as u64)));
            for (i, indices) in batches.iter().enumerate() {
                if let Flow::Stop = self.poll() {
                    return self.finish(true, false, &history, started);
                }
                // the base rate may have been changed by a command
                lr = self.lr * decay;
                let n = indices.len();
                let seed = batch_seed(req.seed, epoch, i);
                let (images, labels) = data.train.batch_augmented(indices, &ad, req.augment, seed);
                let (next, stats) = train_step(model, &mut optim, lr, images, labels, &pruning);
                model = next;
                let (sample_loss, hits) = (stats.loss_sum, stats.hits);
                window = Some(match window {
                    Some((l, c)) => (l + sample_loss, c + hits),
                    None => (sample_loss, hits),
                });
                window_steps += 1;
                window_images += n;
                global_step += 1;
                let last = i + 1 == batches.len();
                if window_steps == readback || last {
                    if let Some((l, c)) = window.take() {
                        let loss_sum = l.into_scalar::<f64>();
                        if !loss_sum.is_finite() {
                            rollbacks += 1;
                            if rollbacks > MAX_ROLLBACKS {
                                anyhow::bail!(
                                    "training diverged: the loss became non-finite {rollbacks} times (last at epoch {epoch}, step {}), even at learning rate {:.3e}; try a lower --lr (nothing non-finite was saved)",
                                    i + 1,
                                    self.lr
                                );
                            }
                            model = last_good.clone();
                            optim = AdamConfig::new().init();
                            self.lr *= ROLLBACK_LR_FACTOR;
                            self.emit.send(Event::RolledBack {
                                epoch,
                                step_in_epoch: i + 1,
                                lr: self.lr,
                            });
                            window_steps = 0;
                            window_images = 0;
                            window_start = Instant::now();
                            continue;
                        }
                        last_good = model.clone();
                        let correct = c.into_scalar::<i64>() as f64;
                        epoch_loss += loss_sum;
                        epoch_correct += correct;
                        epoch_images += window_images;
                        let secs = window_start.elapsed().as_secs_f64().max(1e-9);
                        self.emit.progress(Event::Step(StepReport {
                            epoch,
                            step_in_epoch: i + 1,
                            steps_per_epoch,
                            global_step,
                            total_steps,
                            loss: loss_sum / window_images as f64,
                            accuracy: correct / window_images as f64,
                            images_per_s: window_images as f64 / secs,
                        }));
                    }
                    window_steps = 0;
                    window_images = 0;
                    window_start = Instant::now();
                }
            }
            match req.prune {
                PruneSchedule::Gmp { target } => {
                    let masks = magnitude_masks(&model, gmp_sparsity(target, epoch, req.epochs));
                    let on_device = masks.to_device(&ad);
                    model = apply_masks(model, &on_device);
                    pruning.masks = Some(on_device);
                }
                PruneSchedule::Lobster { pwe, twt, .. } if !validation.is_empty() => {
                    let snapshot = model.valid();
                    let val_loss = evaluate(&snapshot, &validation, EVAL_BATCH, &device).loss;
                    lobster_plateau.observe(val_loss);
                    if lobster_plateau.stale >= pwe {
                        let (masks, threshold) = lobster_threshold(&snapshot, &validation, twt, &device);
                        let on_device = masks.to_device(&ad);
                        model = apply_masks(model, &on_device);
                        pruning.masks = Some(on_device);
                        lobster_plateau.reset();
                        self.emit.send(Event::Pruned {
                            epoch,
                            threshold,
                            sparsity: masks.sparsity(),
                        });
                    }
                }
                _ => {}
            }
            if req.patience.is_some() && !validation.is_empty() {
                early_stop.observe(evaluate(&model.valid(), &validation, EVAL_BATCH, &device).loss);
            }
            self.emit.send(Event::Evaluating { epoch });
            let valid = model.valid();
            let eval = evaluate(&valid, &data.test, EVAL_BATCH, &device);
            let surv = survival(&valid);
            let sparsity = surv.dense_sparsity(&valid.config);
            let layer_sparsity = [0, 1, 2].map(|i| surv.layers[i].sparsity());
            let metrics = EpochMetrics {
                epoch,
                train_loss: epoch_loss / epoch_images.max(1) as f64,
                train_accuracy: epoch_correct / epoch_images.max(1) as f64,
                test_loss: eval.loss,
                test_accuracy: eval.accuracy,
                lr,
                epoch_s: epoch_start.elapsed().as_secs_f64(),
                sparsity,
                layer_sparsity,
                alive_capsules: surv.map.alive_count(),
                capsules: surv.map.capsules(),
                alive_types: surv.map.alive_types(),
                alive: surv.map.alive.clone(),
            };
            history.push(metrics.clone());
            self.emit.send(Event::Epoch(metrics));
            if let Some(dir) = &req.out_dir {
                let path = dir.join("model.safetensors");
                let info = ModelInfo {
                    dataset: Some(data.name.clone()),
                    preset: Some(req.preset.to_string()),
                    epochs: Some(epoch),
                    test_accuracy: Some(eval.accuracy),
                    sparsity: Some(sparsity),
                    layer_sparsity: Some(
                        surv.layers
                            .iter()
                            .map(|l| (l.name.to_string(), l.sparsity()))
                            .collect(),
                    ),
                };
                let state = RunState {
                    epoch,
                    global_step,
                    base_lr: self.lr,
                    lobster: lobster_plateau,
                    early_stop,
                    masks_active: pruning.masks.is_some(),
                    param_ids: model.param_ids(),
                    history: history.clone(),
                };
                let record = optim
                    .to_record()
                    .into_bytes()
                    .map_err(|e| anyhow::anyhow!("optimizer record: {e}"))?;
                // the resume pair first, the model last: the model's epoch names its pair
                write_resume(dir, req, &state, &record)?;
                save_model(&valid, &info, &path)?;
                write_metrics(dir, &history)?;
                prune_old_resume(dir, epoch);
                self.emit.send(Event::Checkpoint { path, epoch });
            }
            if req.patience.is_some_and(|p| early_stop.stale >= p) {
                return self.finish(false, true, &history, started);
            }
        }
        self.finish(false, false, &history, started)
    }

    fn finish(
        &self,
        stopped: bool,
        early_stopped: bool,
        history: &[EpochMetrics],
        started: Instant,
    ) -> anyhow::Result<()> {
        self.emit.send(Event::Finished {
            stopped,
            early_stopped,
            epochs: history.len(),
            test_accuracy: history.last().map(|m| m.test_accuracy),
            wall_s: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }
}
