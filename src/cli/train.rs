//! `sparsecaps train`.

use anyhow::{Context, bail};

use super::args::{PruneKind, Recipe, TrainArgs};
use super::progress::Progress;
use std::path::Path;

use crate::data::{Augment, DataSource};
use crate::train::messages::{DEFAULT_LR_DECAY, PruneSchedule, check_setting};
use crate::train::resume::resume_request;
use crate::train::schedule::LrSchedule;
use crate::train::{Command, Event, TrainRequest, Trainer};

/// Epochs of a new run when `--epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 3;
/// Most epochs of a `--recipe rem` run when `--epochs` is not given (its patience of 200
/// usually ends it first).
pub const REM_MAX_EPOCHS: usize = 1_000;

/// Runs a training run in the trainer thread and reports its progress.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    check_numbers(&args)?;
    let req = match &args.resume {
        Some(dir) => {
            let mut req = resume_request(dir, |_, _| args.epochs)?;
            if let Some(device) = args.device {
                req.device = device;
            }
            req
        }
        None => new_request(&args),
    };
    drive(req)
}

/// Checks the numeric flags, also those the request leaves out (e.g. `--lambda` without
/// `--prune lobster`), so a mistyped number is never silently ignored.
fn check_numbers(args: &TrainArgs) -> anyhow::Result<()> {
    let non_negative = |v: f64| v >= 0.0;
    let fraction = |v: f64| v > 0.0 && v <= 1.0;
    check_setting("--lr", args.lr, "a positive number", |v| v > 0.0)?;
    if let Some(decay) = args.lr_decay {
        check_setting("--lr-decay", decay, "in (0, 1]", fraction)?;
        if args.lr_schedule == LrSchedule::Cosine {
            bail!("--lr-decay sets the exponential schedule; --lr-schedule cosine falls to 0 on its own");
        }
    }
    check_setting("--lambda", args.lambda, "a non-negative number", non_negative)?;
    check_setting("--twt", args.twt, "a non-negative number", non_negative)?;
    check_setting("--lambda-decay", args.lambda_decay, "in (0, 1]", fraction)?;
    check_setting("--plateau-tolerance", args.plateau_tolerance, "in [0, 1)", |v| {
        (0.0..1.0).contains(&v)
    })?;
    let validates = args.prune == PruneKind::Lobster || args.patience.is_some() || args.recipe.is_some();
    if args.validation.is_some() && !validates {
        anyhow::bail!("--validation holds out images for --prune lobster or --patience; give one of them");
    }
    Ok(())
}

/// A dataset folder as an absolute path, so that the run's records (`config.json`, the
/// resume record, the model's dataset) name the same folder from any working directory.
fn absolute_folder(data: &DataSource) -> DataSource {
    match data {
        DataSource::Dir(p) => DataSource::Dir(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        other => other.clone(),
    }
}

/// The request of a new run from the command line.
fn new_request(args: &TrainArgs) -> TrainRequest {
    let req = TrainRequest {
        data: absolute_folder(&args.data),
        preset: args.preset,
        epochs: args.epochs.unwrap_or(DEFAULT_EPOCHS),
        batch: args.batch.map_or(args.preset.default_batch(), |b| b as usize),
        lr: args.lr,
        lr_decay: args.lr_decay.unwrap_or(DEFAULT_LR_DECAY),
        lr_schedule: args.lr_schedule,
        seed: args.seed,
        device: args.device.unwrap_or_default(),
        limit_train: args.limit_train,
        limit_test: args.limit_test,
        out_dir: args.out.clone(),
        prune: match args.prune {
            PruneKind::None => PruneSchedule::None,
            PruneKind::Lobster => PruneSchedule::Lobster {
                lambda: args.lambda,
                pwe: args.pwe,
                twt: args.twt,
                lambda_decay: args.lambda_decay,
                tolerance: args.plateau_tolerance,
            },
            PruneKind::Gmp => PruneSchedule::Gmp {
                target: args.target_sparsity,
            },
        },
        validation: args.validation,
        init: args.init.clone(),
        patience: args.patience,
        no_decoder: args.no_decoder,
        augment: args.augment,
        ..TrainRequest::default()
    };
    match args.recipe {
        Some(Recipe::Rem) => rem_recipe(req, args.epochs),
        None => req,
    }
}

/// LOBSTER as EIDOSLAB/REM ran it on the MNIST CapsNet (`src/configs/mnist_pruning.json`
/// and its training loop): see `--recipe` in [`super::args::TrainArgs`].
pub fn rem_recipe(req: TrainRequest, epochs: Option<usize>) -> TrainRequest {
    TrainRequest {
        epochs: epochs.unwrap_or(REM_MAX_EPOCHS),
        batch: 128,
        lr: 1e-3,
        lr_decay: 0.99,
        lr_schedule: LrSchedule::Exponential,
        prune: PruneSchedule::Lobster {
            lambda: 1e-4,
            pwe: 0,
            twt: 0.0,
            lambda_decay: 0.99,
            tolerance: 0.01,
        },
        validation: req.validation.or(Some(5_500)),
        no_decoder: true,
        augment: Augment::SHIFT2,
        patience: req.patience.or(Some(200)),
        ..req
    }
}

/// The line reporting an epoch's events (`None` for the others).
fn report_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Evaluating { epoch } => format!("epoch {epoch}: evaluating on the test set..."),
        Event::Epoch(m) => format!(
            "epoch {}: {} | test loss {:.4} acc {:.4} | sparsity {:.4}, capsules {}/{} | {:.1} s",
            m.epoch,
            match (m.train_loss, m.train_accuracy) {
                (Some(loss), Some(acc)) => format!("train loss {loss:.4} acc {acc:.4}"),
                _ => "no training step kept (all rolled back)".to_string(),
            },
            m.test_loss,
            m.test_accuracy,
            m.sparsity,
            m.alive_capsules,
            m.capsules,
            m.epoch_s
        ),
        Event::Checkpoint { path, epoch } => format!("epoch {epoch}: wrote {}", path.display()),
        Event::Pruned {
            epoch,
            threshold,
            sparsity,
        } => format!("epoch {epoch}: pruned below |w| = {threshold:.3e}: sparsity {sparsity:.4}"),
        Event::RolledBack {
            epoch,
            step_in_epoch,
            lr,
        } => format!(
            "epoch {epoch}, step {step_in_epoch}: non-finite loss; back to the last finite state, learning rate now {lr:.3e}"
        ),
        _ => return None,
    })
}

/// The last line of a run: how it ended, its test accuracy and where the model is.
fn finished_line(event: &Event, out: &Path) -> String {
    let Event::Finished {
        stopped,
        epochs,
        test_accuracy,
        wall_s,
        early_stopped,
    } = event
    else {
        return String::new();
    };
    let acc = test_accuracy
        .map(|a| format!("{a:.4}"))
        .unwrap_or_else(|| "-".into());
    let how = match (stopped, early_stopped) {
        (true, _) => "stopped",
        (false, true) => "stopped early (no better validation loss within --patience epochs)",
        (false, false) => "finished",
    };
    // a resumed run's epochs count its earlier sessions; the time is this session's
    format!(
        "{how} after epoch {epochs} ({wall_s:.1} s this time); test accuracy {acc}; model in {}",
        out.join("model.safetensors").display()
    )
}

/// On [`Event::Started`]: closes the loading bar, prints the device and the run's size, and
/// opens the training bar (`None` for any other event).
fn start_bar(
    loading: Option<Progress>,
    device_line: Option<String>,
    preset: &str,
    started: &Event,
) -> Option<Progress> {
    let Event::Started {
        train_images,
        test_images,
        total_steps,
        params,
        capsules,
    } = started
    else {
        return None;
    };
    if let Some(bar) = loading {
        bar.finish();
    }
    if let Some(line) = device_line {
        eprintln!("{line}");
    }
    eprintln!(
        "training {preset} on {train_images} images, testing on {test_images}: {params} parameters, {capsules} primary capsules"
    );
    Some(Progress::new(*total_steps as u64, "train"))
}

/// Sends `req` to a trainer thread and reports its progress until it ends.
fn drive(req: TrainRequest) -> anyhow::Result<()> {
    let out = req.out_dir.clone().unwrap_or_default();
    let preset = match (&req.resume, &req.init) {
        (Some(_), _) => format!("{} (resumed)", req.preset),
        (None, Some(_)) => "model".to_string(),
        (None, None) => req.preset.to_string(),
    };
    let trainer = Trainer::spawn(None).context("cannot start the trainer thread")?;
    trainer.send(Command::Start(Box::new(req)))?;
    let mut progress: Option<Progress> = None;
    let mut loading: Option<Progress> = None;
    // printed once the inputs have loaded, so a refused input gives one line only
    let mut device_line = None;
    while let Some(event) = trainer.recv_event() {
        match event {
            Event::Device { name, reason } => device_line = Some(format!("device: {name} ({reason})")),
            Event::Loading(p) => {
                // a bar on a terminal only: a refused input still gives one line
                let bar = loading.get_or_insert_with(|| Progress::bar_only(p.total as u64, "load"));
                bar.update(p.done as u64, "images decoded");
            }
            Event::Started { .. } => {
                progress = start_bar(loading.take(), device_line.take(), &preset, &event);
            }
            Event::WarmingUp => {
                if let Some(p) = progress.as_mut() {
                    p.update(0, "first step: compiling and tuning GPU kernels...");
                }
            }
            Event::Step(s) => {
                if let Some(p) = progress.as_mut() {
                    let msg = format!(
                        "epoch {} loss {:.4} acc {:.3} {:.0} img/s",
                        s.epoch, s.loss, s.accuracy, s.images_per_s
                    );
                    p.update(s.global_step as u64, &msg);
                }
            }
            Event::Evaluating { .. }
            | Event::Epoch(_)
            | Event::Checkpoint { .. }
            | Event::Pruned { .. }
            | Event::RolledBack { .. } => {
                if let Some(line) = report_line(&event) {
                    match &progress {
                        Some(p) => p.println(&line),
                        None => eprintln!("{line}"),
                    }
                }
            }
            Event::Paused | Event::Resumed | Event::EarlierEpochs { .. } => {}
            Event::Finished { .. } => {
                if let Some(p) = &progress {
                    p.finish();
                }
                println!("{}", finished_line(&event, &out));
                return Ok(());
            }
            Event::Failed(e) => {
                if let Some(p) = &progress {
                    p.finish();
                }
                // typed, so that a panic of the trainer exits as an internal error
                return Err(e.into());
            }
        }
    }
    bail!("the trainer thread ended unexpectedly")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_folder_is_recorded_as_an_absolute_path() {
        let cwd = std::env::current_dir().unwrap();
        let DataSource::Dir(p) = absolute_folder(&DataSource::Dir("digits".into())) else {
            panic!("not a folder")
        };
        assert_eq!(p, cwd.join("digits"));
        assert_eq!(absolute_folder(&DataSource::Cifar10), DataSource::Cifar10);
    }
}
