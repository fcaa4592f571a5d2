//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::data::DataSource;
use crate::device::DeviceChoice;
use crate::model::Preset;
use crate::train::messages::MAX_EPOCHS;

/// sparsecaps: train, prune and inspect efficient Capsule Networks.
/// Without a subcommand it opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "sparsecaps", version, about)]
pub struct Cli {
    /// What to do (none: open the app).
    #[command(subcommand)]
    pub command: Option<Commands>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Train a CapsNet and write RUN_DIR/model.safetensors, config.json and metrics.csv.
    Train(TrainArgs),
    /// Evaluate a model file on a test set.
    Eval(EvalArgs),
    /// Time training steps, batch inference and single-image latency.
    Bench(BenchArgs),
    /// Prune a model: weights by magnitude to an exact global sparsity, whole primary
    /// capsules, or backbone channels by FLOPs (EagleEye); optionally fine-tune it.
    Prune(PruneArgs),
    /// Write a model file again, compacted with --compact (dead capsules removed).
    Export(ExportArgs),
    /// Classify one image and show the capsules that vote most for the prediction.
    Inspect(InspectArgs),
    /// Prune a model at several sparsities and write DIR/sweep.csv, sweep.md, sweep.svg and
    /// sweep.png.
    Sweep(SweepArgs),
    /// Draw a sweep's chart again (DIR/sweep.svg and DIR/sweep.png) from its DIR/sweep.csv,
    /// without rerunning the sweep; or, for a training run's folder (a metrics.csv, no
    /// sweep.csv), draw alive capsules K/N and test accuracy against the sparsity reached
    /// (DIR/run.svg and DIR/run.png).
    Plot(PlotArgs),
    /// Print every layer of a model file or preset: weight shape, parameters and MFLOPs per
    /// image, as a Markdown table.
    Layers(LayersArgs),
}

/// `layers` arguments.
#[derive(Debug, Args)]
pub struct LayersArgs {
    /// Model file to describe.
    #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
    pub model: Option<PathBuf>,
    /// Preset to describe instead of a model file.
    #[arg(long, ignore_case = true)]
    pub preset: Option<Preset>,
    /// The preset's input as C,H,W (CIFAR-10: 3,32,32).
    #[arg(long, value_delimiter = ',', default_value = "1,28,28", value_parser = positive)]
    pub input: Vec<usize>,
}

/// `plot` arguments.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Folder written by `sweep`: its sweep.csv is read, and the baseline row of its sweep.md
    /// when there is one (else times and sizes are taken relative to the row at sparsity 0).
    /// Or a run folder written by `train` with pruning: its metrics.csv is read.
    pub dir: PathBuf,
    /// Chart title (default: "METHOD pruning", the method read from sweep.csv; `sweep` titles
    /// its chart "METHOD pruning of the PRESET model, DATASET"; a run's chart is titled from
    /// its config.json, "PRUNING on the PRESET model, DATASET").
    #[arg(long)]
    pub title: Option<String>,
}

/// `sweep` arguments.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Dense model file to prune.
    #[arg(long)]
    pub model: PathBuf,
    /// Comma-separated sparsities (fractions of weights, of capsules for --method capsules,
    /// of the backbone's FLOPs for --method backbone).
    #[arg(long, value_delimiter = ',', value_parser = fraction, default_value = "0,0.5,0.9,0.95,0.99")]
    pub sparsities: Vec<f64>,
    /// Pruning method: magnitude, capsules or backbone (EagleEye, backbone presets only).
    #[arg(long, default_value = "magnitude", ignore_case = true)]
    pub method: PruneMethod,
    /// Also remove this fraction of conv1's channels at every non-zero sparsity (see
    /// `prune --conv1`).
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub conv1: f64,
    /// Fine-tuning of each pruned model.
    #[command(flatten)]
    pub finetune: FinetuneArgs,
    /// Dataset (default: the model's).
    #[arg(long, value_parser = dataset)]
    pub data: Option<DataSource>,
    /// Fine-tune on the first N training images only.
    #[arg(long, value_parser = positive)]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = positive)]
    pub limit_test: Option<usize>,
    /// Timed repetitions of each benchmark (at most 1,000).
    #[arg(long, default_value_t = 3, value_parser = at_most_1000)]
    pub repeat: usize,
    /// With --method backbone: channel choices EagleEye samples and scores per sparsity
    /// (at most 1,000).
    #[arg(long, default_value_t = 20, value_parser = at_most_1000)]
    pub candidates: usize,
    /// Device: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", ignore_case = true)]
    pub device: DeviceChoice,
    /// Model the ratios in sweep.md are taken to (default: --model as given).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Output folder (sweep.csv, sweep.md, sweep.svg, sweep.png and the compact models).
    #[arg(long)]
    pub out: PathBuf,
}

/// `inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file (dense or compact).
    #[arg(long)]
    pub model: PathBuf,
    /// Image file (PNG or JPEG), read as the app reads it: for an MNIST model (28x28 grey,
    /// its file naming mnist or no dataset) as a drawn digit (light paper inverted, centred
    /// in 20x20 as MNIST's digits are), for any other model resized to its input as it is.
    #[arg(long)]
    pub image: PathBuf,
    /// How many capsules to list.
    #[arg(long, default_value_t = 10, value_parser = positive)]
    pub top: usize,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// `prune` arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Model file to prune.
    #[arg(long)]
    pub model: PathBuf,
    /// Fraction to remove, 0..=1: of the prunable weights (conv1, primary, W) by magnitude,
    /// of the primary capsules, or of the backbone's FLOPs (see --method).
    #[arg(long, value_parser = fraction)]
    pub sparsity: Option<f64>,
    /// Pruning method: magnitude (global, smallest weights first; --sparsity is the
    /// fraction of weights), capsules (structured; --sparsity is the fraction of capsules)
    /// or backbone (EagleEye search over the backbone's channels; give --flops).
    #[arg(long, default_value = "magnitude", ignore_case = true)]
    pub method: PruneMethod,
    /// With --method backbone: the fraction of the dense backbone's FLOPs to keep, e.g. 0.5.
    #[arg(long, value_parser = fraction)]
    pub flops: Option<f64>,
    /// With --method backbone: channel choices to sample and score (each: L1 filter
    /// pruning, adaptive BN on 10 training batches, accuracy on the last 1,000 training
    /// images); the best is kept and fine-tuned. At most 1,000.
    #[arg(long, default_value_t = 20, value_parser = at_most_1000)]
    pub candidates: usize,
    /// Also remove this fraction of conv1's channels, the least important first (filter
    /// L1 norm times the L1 norm of the live primary weights reading it); compaction then
    /// drops them.
    #[arg(long, value_parser = fraction, default_value_t = 0.0)]
    pub conv1: f64,
    /// Fine-tuning of the pruned model.
    #[command(flatten)]
    pub finetune: FinetuneArgs,
    /// Fine-tune on the first N training images only.
    #[arg(long, value_parser = positive)]
    pub limit_train: Option<usize>,
    /// Dataset to evaluate the pruned model on (default: the model's).
    #[arg(long, value_parser = dataset)]
    pub data: Option<DataSource>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = positive)]
    pub limit_test: Option<usize>,
    /// Device: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", ignore_case = true)]
    pub device: DeviceChoice,
    /// Output model file.
    #[arg(long)]
    pub out: PathBuf,
}

pub use crate::prune::PruneMethod;

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model file to export.
    #[arg(long)]
    pub model: PathBuf,
    /// Output file (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep only the alive capsules, live capsule types and used conv1 channels.
    #[arg(long)]
    pub compact: bool,
    /// Store the weights as 16-bit floats (half the file; tensors under 1,024 values, such
    /// as biases and BatchNorm statistics, stay 32-bit). Check the result with `eval`.
    #[arg(long)]
    pub f16: bool,
}

/// Parses a fraction in [0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number between 0 and 1")),
    }
}

/// Parses a dataset name or folder; an empty one is refused.
fn dataset(s: &str) -> Result<DataSource, String> {
    if s.trim().is_empty() {
        return Err("give mnist, fashion-mnist, cifar10 or a folder".into());
    }
    s.parse::<DataSource>().map_err(|never| match never {})
}

/// Parses a count that must be at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

/// Parses a count of repetitions or candidates: 1 to 1,000 (each costs a timed pass or a
/// scored model, so a larger count is a typing slip rather than a plan).
fn at_most_1000(s: &str) -> Result<usize, String> {
    match positive(s)? {
        n if n <= 1000 => Ok(n),
        _ => Err(format!("'{s}' is more than 1,000")),
    }
}

/// Parses LOBSTER's `--pwe`: a whole number, or -1 (EIDOSLAB's spelling of 0: a threshold
/// step after every epoch).
fn pwe(s: &str) -> Result<usize, String> {
    match s.trim() {
        "-1" => Ok(0),
        t => t
            .parse::<usize>()
            .map_err(|_| format!("'{s}' is not a whole number (or -1, the same as 0)")),
    }
}

/// Parses a number of training epochs: 1 to [`MAX_EPOCHS`].
fn epochs(s: &str) -> Result<usize, String> {
    match positive(s)? {
        n if n <= MAX_EPOCHS => Ok(n),
        _ => Err(format!("'{s}' is more than {MAX_EPOCHS} epochs")),
    }
}

/// Parses a number of fine-tuning epochs: 0 to [`MAX_EPOCHS`].
fn finetune_epochs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_EPOCHS => Ok(n),
        _ => Err(format!("'{s}' is not a whole number from 0 to {MAX_EPOCHS}")),
    }
}

/// Fine-tuning under the pruning masks (`prune`, `sweep`).
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Fine-tune each pruned model for this many epochs under its pruning masks (at most
    /// 100,000).
    #[arg(long = "finetune-epochs", default_value_t = 0, value_parser = finetune_epochs)]
    pub epochs: usize,
    /// Batch size of fine-tuning (default 32).
    #[arg(long, value_parser = positive)]
    pub batch: Option<usize>,
    /// Learning rate of fine-tuning (default 0.001).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Vary the fine-tuning images as `train --augment` does: auto (the default: crop-flip
    /// for colour images, none for grey ones), none, shift or crop-flip.
    #[arg(long)]
    pub augment: Option<crate::data::Augment>,
}

impl FinetuneArgs {
    /// The fine-tuning settings. A learning rate that is not a positive number is refused,
    /// and so are fine-tuning options without `--finetune-epochs` (they would do nothing).
    pub fn settings(&self) -> anyhow::Result<crate::train::finetune::FinetuneSettings> {
        let defaults = crate::train::finetune::FinetuneSettings::default();
        let lr = self.lr.unwrap_or(defaults.lr);
        if !(lr.is_finite() && lr > 0.0) {
            anyhow::bail!("--lr must be a positive number, not {lr}");
        }
        if self.epochs == 0 && (self.batch.is_some() || self.lr.is_some() || self.augment.is_some()) {
            anyhow::bail!(
                "--batch, --lr and --augment set up fine-tuning, which runs only with --finetune-epochs N (1 or more)"
            );
        }
        Ok(crate::train::finetune::FinetuneSettings {
            epochs: self.epochs,
            batch: self.batch.unwrap_or(defaults.batch),
            lr,
            augment: self.augment.unwrap_or(defaults.augment),
            ..defaults
        })
    }
}

/// `train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset: mnist (built in), fashion-mnist, cifar10, or a folder (the four IDX files,
    /// train/ and test/ class folders of images, or CIFAR-10's binary release).
    #[arg(long, default_value = "mnist", value_parser = dataset)]
    pub data: DataSource,
    /// Continue from this model file, dense, pruned or compact (its config replaces --preset;
    /// pruned weights stay zero, and a compact model trains as it is, at its own smaller cost).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Model: the CapsNets paper, small or tiny, or a CapsNet head on a CNN backbone with
    /// BatchNorm, resnet-caps (ResNet-20) or mobilenet-caps (MobileNetV1-style).
    #[arg(long, default_value = "small", ignore_case = true)]
    pub preset: Preset,
    /// Epochs (3 by default, at most 100,000); with --resume, the new total.
    #[arg(long, value_parser = epochs)]
    pub epochs: Option<usize>,
    /// Continue an interrupted or finished run from its folder's last checkpoint: weights,
    /// Adam state, masks, learning-rate and LOBSTER state, epoch counter and shuffling
    /// (the run's settings are kept: only --epochs and --device may be given with it).
    #[arg(long, conflicts_with_all = [
        "init", "out", "data", "preset", "batch", "lr", "lr_decay", "lr_schedule", "seed", "limit_train",
        "limit_test", "prune", "lambda", "pwe", "twt", "target_sparsity", "lambda_decay",
        "plateau_tolerance", "augment", "no_decoder", "recipe", "patience", "validation",
    ])]
    pub resume: Option<PathBuf>,
    /// Batch size (default: 128 for paper, 32 for small, 16 for tiny, 64 for the backbone
    /// presets; --preset's, also with --init).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: Option<u32>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning-rate decay per epoch of the exponential schedule (default 0.99).
    #[arg(long)]
    pub lr_decay: Option<f64>,
    /// Learning-rate schedule: exponential (--lr-decay per epoch) or cosine (from --lr
    /// down to 0 over --epochs, every step).
    #[arg(
        long,
        default_value = "exponential",
        ignore_case = true,
        conflicts_with = "recipe"
    )]
    pub lr_schedule: crate::train::schedule::LrSchedule,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Device: auto (the default), cpu or wgpu; with --resume, the run's own device unless
    /// given (a run may go on on another device).
    #[arg(long, ignore_case = true)]
    pub device: Option<DeviceChoice>,
    /// Train on the first N training images only.
    #[arg(long, value_parser = positive)]
    pub limit_train: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long, value_parser = positive)]
    pub limit_test: Option<usize>,
    /// Pruning while training: none, lobster or gmp.
    #[arg(long, default_value = "none", ignore_case = true)]
    pub prune: PruneKind,
    /// LOBSTER's regularisation strength.
    #[arg(long, default_value_t = 1e-4)]
    pub lambda: f64,
    /// LOBSTER: epochs without validation improvement before a threshold step (0, or -1 as
    /// in EIDOSLAB's configs: after every epoch).
    #[arg(long, default_value_t = 2, value_parser = pwe, allow_negative_numbers = true)]
    pub pwe: usize,
    /// LOBSTER: tolerated relative increase of the validation loss by a threshold step.
    #[arg(long, default_value_t = 0.0)]
    pub twt: f64,
    /// GMP: final sparsity (reached after the last epoch) of the prunable weights the model
    /// holds (a compact model's own); weights already zero stay pruned.
    #[arg(long, default_value_t = 0.95, value_parser = fraction)]
    pub target_sparsity: f64,
    /// LOBSTER: factor applied to lambda after every epoch.
    #[arg(long, default_value_t = 1.0)]
    pub lambda_decay: f64,
    /// LOBSTER: relative margin by which the validation loss must improve to count as
    /// better when waiting --pwe epochs.
    #[arg(long, default_value_t = 0.0)]
    pub plateau_tolerance: f64,
    /// Vary the training images: auto (crop-flip for colour images, none for grey ones),
    /// none, shift (by up to 2 pixels, for digits) or crop-flip (4 pixels of padding,
    /// random crop, horizontal flip; for colour images).
    #[arg(long, default_value = "auto")]
    pub augment: crate::data::Augment,
    /// Build the network without the reconstruction decoder (a new network: a model given
    /// with --init keeps its own).
    #[arg(long, conflicts_with = "init")]
    pub no_decoder: bool,
    /// A published training recipe; `rem` is LOBSTER as its authors ran it on the CapsNet
    /// (EIDOSLAB/REM): lambda 1e-4 x 0.99 per epoch, a threshold step every epoch, twt 0,
    /// plateau tolerance 0.01, Adam 1e-3 x 0.99 per epoch, batch 128, no decoder, random
    /// shifts of up to 2 pixels (in place of --augment), 5,500 validation images, stop
    /// after 200 epochs without a better validation loss (at most
    /// --epochs, 1,000 by default). It replaces those flags (--validation and --patience,
    /// when given, replace its 5,500 and 200); --preset, --data, --seed, --device and the
    /// limits still apply.
    #[arg(long)]
    pub recipe: Option<Recipe>,
    /// Stop after N epochs without a better validation loss (holds out a validation split
    /// as for LOBSTER).
    #[arg(long, value_parser = positive)]
    pub patience: Option<usize>,
    /// Training images held out for validation (LOBSTER, --patience or --recipe; default
    /// 10%, at most 5,000).
    #[arg(long, value_parser = positive)]
    pub validation: Option<usize>,
    /// Run folder.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
}

/// Published training recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recipe {
    /// LOBSTER as EIDOSLAB/REM ran it on the MNIST CapsNet.
    Rem,
}

pub use crate::train::messages::PruneKind;

/// `eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file (.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset (default: the one the model was trained on, else mnist).
    #[arg(long, value_parser = dataset)]
    pub data: Option<DataSource>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = positive)]
    pub limit_test: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: u32,
    /// Device: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", ignore_case = true)]
    pub device: DeviceChoice,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// `bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model file to time (dense or compact).
    #[arg(long, conflicts_with = "preset")]
    pub model: Option<PathBuf>,
    /// Preset to time with fresh weights (default small).
    #[arg(long, ignore_case = true)]
    pub preset: Option<Preset>,
    /// Batch size for the training step and batch inference.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Timed repetitions (medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Device: auto, cpu or wgpu.
    #[arg(long, default_value = "auto", ignore_case = true)]
    pub device: DeviceChoice,
    /// Also time the app's interactive actions: a sparsity-slider move (both methods, on
    /// 256 held-out MNIST digits) and the inspection of one digit.
    #[arg(long)]
    pub app: bool,
    /// Also time each stage of a training step (conv1, primary conv, votes, routing,
    /// decoder + loss, backward, optimizer step), with a device sync between stages.
    #[arg(long)]
    pub profile: bool,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn pwe_takes_eidoslabs_minus_one_for_every_epoch() {
        let parse = |v: &str| match Cli::try_parse_from(["sparsecaps", "train", "--out", "r", "--pwe", v]) {
            Ok(Cli {
                command: Some(Commands::Train(t)),
                ..
            }) => Ok(t.pwe),
            Ok(_) => Err("not train".to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(parse("-1"), Ok(0));
        assert_eq!(parse("3"), Ok(3));
        assert!(parse("-2").unwrap_err().contains("or -1"));
    }
}
