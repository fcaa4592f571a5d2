//! Messages between the trainer thread and whoever drives it (the CLI or the app).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Augment, DataSource};
use crate::device::DeviceChoice;
pub use crate::model::Preset;

/// How a run prunes while it trains.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum PruneSchedule {
    /// No pruning.
    #[default]
    None,
    /// LOBSTER after every step; when the validation loss has not improved for `pwe`
    /// epochs, the largest global magnitude threshold whose validation loss stays within
    /// `(1 + twt)` of the current one prunes for good.
    Lobster {
        /// Regularisation strength.
        lambda: f64,
        /// Patience in epochs.
        pwe: usize,
        /// Tolerated relative loss increase.
        twt: f64,
        /// Factor applied to `lambda` after every epoch (1: constant).
        lambda_decay: f64,
        /// Relative margin by which the validation loss must improve to reset the wait
        /// (0: any decrease).
        tolerance: f64,
    },
    /// Gradual magnitude pruning: after epoch e of E, global magnitude pruning to
    /// `target * (1 - (1 - e/E)^3)`.
    Gmp {
        /// Final sparsity.
        target: f64,
    },
}

/// Which pruning schedule, without its settings: the `--prune` choice and the app's
/// "Pruning" combo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PruneKind {
    /// No pruning.
    None,
    /// LOBSTER with threshold steps.
    Lobster,
    /// Gradual magnitude pruning.
    Gmp,
}

impl PruneKind {
    /// Every kind, in menu order.
    pub const ALL: [PruneKind; 3] = [PruneKind::None, PruneKind::Lobster, PruneKind::Gmp];

    /// Label in the UI.
    pub fn label(self) -> &'static str {
        match self {
            PruneKind::None => "none",
            PruneKind::Lobster => "LOBSTER",
            PruneKind::Gmp => "gradual magnitude",
        }
    }

    /// The schedule of this kind with the default settings (LOBSTER: lambda 1e-4, pwe 2,
    /// twt 0, no decay or tolerance; GMP: target 0.9).
    pub fn default_schedule(self) -> PruneSchedule {
        match self {
            PruneKind::None => PruneSchedule::None,
            PruneKind::Lobster => PruneSchedule::Lobster {
                lambda: 1e-4,
                pwe: 2,
                twt: 0.0,
                lambda_decay: 1.0,
                tolerance: 0.0,
            },
            PruneKind::Gmp => PruneSchedule::Gmp { target: 0.9 },
        }
    }
}

impl PruneSchedule {
    /// Its kind.
    pub fn kind(&self) -> PruneKind {
        match self {
            PruneSchedule::None => PruneKind::None,
            PruneSchedule::Lobster { .. } => PruneKind::Lobster,
            PruneSchedule::Gmp { .. } => PruneKind::Gmp,
        }
    }

    /// Whether the schedule needs a validation split.
    pub fn needs_validation(&self) -> bool {
        matches!(self, PruneSchedule::Lobster { .. })
    }
}

/// Sparsity of gradual magnitude pruning after epoch `epoch` of `epochs` (cubic schedule
/// from 0 to `target`).
pub fn gmp_sparsity(target: f64, epoch: usize, epochs: usize) -> f64 {
    let progress = (epoch as f64 / epochs.max(1) as f64).clamp(0.0, 1.0);
    target * (1.0 - (1.0 - progress).powi(3))
}

/// Everything a training run needs: the one settings type of a run. The CLI's arguments
/// and the app's form fill it in, the trainer takes it, and it is what `config.json`, the
/// resume records and the app's saved form hold (fields a file lacks take their defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainRequest {
    /// Dataset.
    pub data: DataSource,
    /// Model size.
    pub preset: Preset,
    /// Epochs to train.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Learning-rate decay per epoch (epoch e, from 1, trains at `lr * decay^(e-1)`) of
    /// the exponential schedule.
    pub lr_decay: f64,
    /// How the learning rate changes over the run (records without it are exponential).
    pub lr_schedule: super::schedule::LrSchedule,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Device choice.
    pub device: DeviceChoice,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
    /// Run folder for the model, config, metrics and checkpoints; nothing is written if `None`.
    #[serde(skip)]
    pub out_dir: Option<PathBuf>,
    /// Read the loss back from the device every this many steps.
    pub readback_every: usize,
    /// Pruning while training.
    pub prune: PruneSchedule,
    /// Training images held out for validation (default: 10% of the training set, at most
    /// 5,000, when LOBSTER or early stopping needs them).
    pub validation: Option<usize>,
    /// Start from this model file (dense, pruned or compact) instead of fresh weights; its
    /// config replaces the preset's, and pruned weights stay zero.
    pub init: Option<PathBuf>,
    /// How training images are varied.
    pub augment: Augment,
    /// Build a fresh network without the reconstruction decoder.
    pub no_decoder: bool,
    /// Stop after this many epochs without a better validation loss (a validation split
    /// is then held out as for LOBSTER).
    pub patience: Option<usize>,
    /// Continue a run from its last checkpoint (whose model replaces `init`'s, which keeps
    /// naming the file the run first started from).
    #[serde(skip)]
    pub resume: Option<Box<ResumePoint>>,
}

/// Where a resumed run starts: the model, the loop state and Adam's record of its last
/// checkpoint.
#[derive(Clone)]
pub struct ResumePoint {
    /// The checkpoint's `model.safetensors`.
    pub model: PathBuf,
    /// The loop state.
    pub state: super::resume::RunState,
    /// The optimiser record (burnpack bytes).
    pub optimizer: Vec<u8>,
}

impl std::fmt::Debug for ResumePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumePoint")
            .field("model", &self.model)
            .field("epoch", &self.state.epoch)
            .field("optimizer_bytes", &self.optimizer.len())
            .finish()
    }
}

/// Learning-rate decay per epoch of the exponential schedule when none is given (the
/// default request's, and `train` without `--lr-decay`).
pub const DEFAULT_LR_DECAY: f64 = 0.99;

impl Default for TrainRequest {
    fn default() -> Self {
        Self {
            data: DataSource::Mnist,
            preset: Preset::Small,
            epochs: 1,
            batch: 128,
            lr: 1e-3,
            lr_decay: DEFAULT_LR_DECAY,
            lr_schedule: super::schedule::LrSchedule::Exponential,
            seed: 42,
            device: DeviceChoice::Auto,
            limit_train: None,
            limit_test: None,
            out_dir: None,
            readback_every: 10,
            prune: PruneSchedule::None,
            validation: None,
            init: None,
            augment: Augment::Auto,
            no_decoder: false,
            patience: None,
            resume: None,
        }
    }
}

/// Commands to the trainer thread.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start a run (ignored while one is running).
    Start(Box<TrainRequest>),
    /// Continue the run in this folder from its last checkpoint (ignored while a run is
    /// running); a folder that cannot be continued is answered with [`Event::Failed`].
    ResumeRun {
        /// The run folder (`model.safetensors` and `resume/`).
        dir: std::path::PathBuf,
        /// Total epochs wanted: the run's own total if this is not more than it has done.
        epochs: usize,
    },
    /// Pause after the current step.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Stop the run after the current step.
    Stop,
    /// Change the base learning rate from the next step on.
    SetLearningRate(f64),
    /// End the thread.
    Shutdown,
}

/// Metrics of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's kept batches; `None` when every batch window of
    /// the epoch was rolled back, so no training step of it survived.
    pub train_loss: Option<f64>,
    /// Training accuracy (0..1) over the epoch's kept batches; `None` as for `train_loss`.
    pub train_accuracy: Option<f64>,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy (0..1).
    pub test_accuracy: f64,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Wall time of the epoch including evaluation, seconds.
    pub epoch_s: f64,
    /// Global sparsity of the prunable weights.
    pub sparsity: f64,
    /// Sparsity of conv1, primary and class-capsule weights.
    pub layer_sparsity: [f64; 3],
    /// Alive primary capsules K.
    pub alive_capsules: usize,
    /// All primary capsules N.
    pub capsules: usize,
    /// Capsule types with an alive capsule.
    pub alive_types: usize,
    /// Alive map (`t * G * G + y * G + x`), for the capsule-map panel.
    pub alive: Vec<bool>,
}

/// A periodic progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Current epoch, from 1.
    pub epoch: usize,
    /// Steps done in this epoch.
    pub step_in_epoch: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Steps done in the whole run.
    pub global_step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Mean loss over the steps since the last report.
    pub loss: f64,
    /// Training accuracy over the steps since the last report.
    pub accuracy: f64,
    /// Training throughput since the last report.
    pub images_per_s: f64,
}

/// Events from the trainer thread.
#[derive(Debug, Clone)]
pub enum Event {
    /// The device was chosen.
    Device {
        /// Device name.
        name: String,
        /// Why it was chosen.
        reason: String,
    },
    /// Images of the dataset decoded so far (image folders; sent while loading).
    Loading(crate::data::LoadProgress),
    /// The run has started.
    Started {
        /// Training images.
        train_images: usize,
        /// Test images.
        test_images: usize,
        /// Steps in the run.
        total_steps: usize,
        /// Model parameters.
        params: usize,
        /// Primary capsules.
        capsules: usize,
    },
    /// A resumed run's epochs before this session, from its checkpoint (after `Started`),
    /// so the curves show the whole run.
    EarlierEpochs {
        /// Their metrics, oldest first.
        epochs: Vec<EpochMetrics>,
        /// Optimiser steps in one epoch (where each epoch ended on the step axis).
        steps_per_epoch: usize,
    },
    /// The first step of a GPU run starts: it first compiles the kernels and tunes those
    /// that burn's autotune cache does not hold yet. Its report follows it alone.
    WarmingUp,
    /// Progress (every `readback_every` steps).
    Step(StepReport),
    /// An epoch finished and was evaluated.
    Epoch(EpochMetrics),
    /// The evaluation of an epoch started.
    Evaluating {
        /// Epoch number.
        epoch: usize,
    },
    /// The threshold step of LOBSTER pruned weights for good.
    Pruned {
        /// Epoch after which it ran.
        epoch: usize,
        /// Magnitude threshold found.
        threshold: f64,
        /// Global sparsity afterwards.
        sparsity: f64,
    },
    /// The loss became NaN or infinite: the run went back to its last finite state, reset
    /// the optimiser and lowered the learning rate.
    RolledBack {
        /// Epoch number.
        epoch: usize,
        /// Step within the epoch where it was noticed.
        step_in_epoch: usize,
        /// The learning rate now in use (the lowered base rate times the schedule's factor
        /// at this step).
        lr: f64,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// The model file.
        path: PathBuf,
        /// Epochs in it.
        epoch: usize,
    },
    /// The run paused.
    Paused,
    /// The run resumed.
    Resumed,
    /// The run ended, completed or stopped.
    Finished {
        /// Whether a stop command ended it early.
        stopped: bool,
        /// Epochs completed.
        epochs: usize,
        /// Last test accuracy, if an epoch finished.
        test_accuracy: Option<f64>,
        /// Wall time of the run, seconds.
        wall_s: f64,
        /// Whether `patience` epochs without a better validation loss ended it.
        early_stopped: bool,
    },
    /// The run failed.
    Failed(TrainError),
}

/// A setting out of its range: what it is, the range in words, and the value given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be {range}, not {value}")]
pub struct SettingError {
    /// The setting, as the CLI names it.
    pub name: &'static str,
    /// Its range in words.
    pub range: &'static str,
    /// The value given.
    pub value: f64,
}

/// Checks that `value` is finite and within `ok`; `range` says it in words.
pub fn check_setting(
    name: &'static str,
    value: f64,
    range: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Result<(), SettingError> {
    if value.is_finite() && ok(value) {
        Ok(())
    } else {
        Err(SettingError { name, range, value })
    }
}

/// Most epochs a run or a fine-tune may ask for (the authors' longest run took 333).
pub const MAX_EPOCHS: usize = 100_000;

impl TrainRequest {
    /// Checks every number of the settings (the trainer refuses a request that fails).
    pub fn validate(&self) -> Result<(), SettingError> {
        let positive = |v: f64| v > 0.0;
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        check_setting("--lr", self.lr, "a positive number", positive)?;
        check_setting("--lr-decay", self.lr_decay, "in (0, 1]", fraction)?;
        check_setting("--epochs", self.epochs as f64, "from 1 to 100,000", |v| {
            (1.0..=MAX_EPOCHS as f64).contains(&v)
        })?;
        check_setting("--batch", self.batch as f64, "at least 1", |v| v >= 1.0)?;
        match self.prune {
            PruneSchedule::None => Ok(()),
            PruneSchedule::Lobster {
                lambda,
                twt,
                lambda_decay,
                tolerance,
                ..
            } => {
                check_setting("--lambda", lambda, "a non-negative number", |v| v >= 0.0)?;
                check_setting("--twt", twt, "a non-negative number", |v| v >= 0.0)?;
                check_setting("--lambda-decay", lambda_decay, "in (0, 1]", fraction)?;
                check_setting("--plateau-tolerance", tolerance, "in [0, 1)", |v| {
                    (0.0..1.0).contains(&v)
                })
            }
            PruneSchedule::Gmp { target } => check_setting("--target-sparsity", target, "in [0, 1)", |v| {
                (0.0..1.0).contains(&v)
            }),
        }
    }
}

/// Why a training run failed, as it crosses from the trainer thread to the UI; the text is
/// the whole chain of causes, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    /// The dataset could not be read, or it does not fit the model.
    #[error("{0}")]
    Data(String),
    /// The run folder cannot be continued (`--resume`, "Resume run...").
    #[error("{0}")]
    Resume(String),
    /// The loss stayed non-finite through every rollback.
    #[error("{0}")]
    Diverged(String),
    /// A file of the run (checkpoint, metrics, initial model) could not be read or written.
    #[error("{0}")]
    File(String),
    /// Anything else the request asked for that cannot be done (e.g. a batch too large).
    #[error("{0}")]
    Refused(String),
    /// A bug: the trainer panicked; it keeps serving.
    #[error("{0}")]
    Panicked(String),
}

/// Each typed error a run can meet becomes the kind of failure it is, its text the whole
/// chain of its causes.
macro_rules! train_error_from {
    ($variant:ident: $($error:ty),+) => {$(
        impl From<$error> for TrainError {
            fn from(e: $error) -> Self {
                TrainError::$variant(crate::errors::cause_chain(&e))
            }
        }
    )+};
}

train_error_from!(Data: crate::data::dataset::DataError);
train_error_from!(Resume: super::resume::ResumeError);
train_error_from!(File: crate::export::ModelFileError, crate::export::TensorFileError, std::io::Error);
train_error_from!(
    Refused: crate::model::ConfigError,
    SettingError,
    crate::model::buffers::BatchTooLarge,
    crate::device::WgpuUnavailable,
    crate::fsio::OutputError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmp_schedule_is_cubic_from_zero_to_target() {
        assert_eq!(gmp_sparsity(0.9, 0, 4), 0.0);
        assert!((gmp_sparsity(0.9, 2, 4) - 0.9 * 0.875).abs() < 1e-12);
        assert_eq!(gmp_sparsity(0.9, 4, 4), 0.9);
    }
}
