//! Training panel: the run's settings (a [`TrainRequest`] edited in place), the run buttons
//! and the progress of the running training.

use std::path::PathBuf;
use std::time::Instant;

use egui::Ui;

use super::commands::{AppEvent, Commands};
use super::dialogs::{self, OpenDialog};
use crate::data::DataSource;
use crate::device::DeviceChoice;
use crate::train::Preset;
use crate::train::messages::PruneKind;
use crate::train::{Command, Event, TrainRequest};

/// One labelled row of a grid; the label also names the widget for screen readers and tests.
pub fn row(ui: &mut Ui, label: &str, add: impl FnOnce(&mut Ui) -> egui::Response) {
    ui.label(label);
    name(&add(ui), label);
    ui.end_row();
}

/// Sets the accessible name of a widget that has no text of its own.
pub fn name(resp: &egui::Response, label: &str) {
    resp.ctx
        .accesskit_node_builder(resp.id, |node| node.set_label(label));
}

/// Test images the app evaluates on after each epoch (a quick look, not the full split).
pub const APP_TEST_IMAGES: usize = 2_000;

/// The app's default run: `tiny` on 10,000 MNIST images for one epoch, on any device.
pub fn default_form() -> TrainRequest {
    TrainRequest {
        preset: Preset::Tiny,
        batch: Preset::Tiny.default_batch(),
        limit_train: Some(10_000),
        ..TrainRequest::default()
    }
}

/// Where the running training stands.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// A run is going.
    pub running: bool,
    /// It is paused.
    pub paused: bool,
    /// Steps done.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// The run's first step report: (its global step, when it came). A resumed run starts
    /// at its checkpoint's step, and loading and GPU warm-up come before it, so the ETA
    /// counts from here.
    pub first_report: Option<(usize, Instant)>,
    /// Seconds the run spent paused since its first step report (the ETA leaves pauses
    /// out).
    pub paused_s: f64,
    /// When the current pause began.
    pub paused_at: Option<Instant>,
    /// Device in use and why.
    pub device: Option<String>,
    /// One-line status.
    pub status: String,
}

impl Progress {
    /// Estimated seconds left, at the pace since the first step report (pauses left out).
    pub fn eta_s(&self) -> Option<f64> {
        let (step0, at) = self.first_report?;
        let done = self.step.checked_sub(step0).filter(|d| *d > 0)?;
        let pausing_s = self.paused_at.map_or(0.0, |p| p.elapsed().as_secs_f64());
        let training_s = (at.elapsed().as_secs_f64() - self.paused_s - pausing_s).max(0.0);
        let per_step_s = training_s / done as f64;
        Some(per_step_s * self.total_steps.saturating_sub(self.step) as f64)
    }
}

/// The training panel: its form, the run's progress and the last error of a run.
#[derive(Debug, Clone)]
pub struct TrainingPanel {
    /// The settings the next run starts with (what persists between sessions).
    pub form: TrainRequest,
    /// The running (or last) run.
    pub progress: Progress,
    /// The last error of a run or of a command the trainer could not take.
    pub error: Option<String>,
    /// Time the UI spends building a frame, ms (moving average; the app sets it).
    pub frame_ms: f64,
    /// Folder of the app's runs (checkpoints the inspector loads).
    pub run_dir: PathBuf,
    /// The folder dialog that is open, if one is.
    pub dialog: Option<OpenDialog<FolderFor>>,
}

/// What a folder chosen in the panel's dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderFor {
    /// "Folder...": the dataset to train on.
    Dataset,
    /// "Resume run...": the run to continue.
    Resume,
}

impl Default for TrainingPanel {
    fn default() -> Self {
        Self {
            form: default_form(),
            progress: Progress::default(),
            error: None,
            frame_ms: 0.0,
            run_dir: std::env::temp_dir().join(format!("sparsecaps-app-{}", std::process::id())),
            dialog: None,
        }
    }
}

impl TrainingPanel {
    /// Whether a run is going.
    pub fn running(&self) -> bool {
        self.progress.running
    }

    /// The request "Start" sends: the form, with the app's test subset and run folder.
    pub fn request(&self) -> TrainRequest {
        TrainRequest {
            epochs: self.form.epochs.max(1),
            batch: self.form.batch.max(1),
            limit_test: Some(APP_TEST_IMAGES),
            out_dir: Some(self.run_dir.clone()),
            readback_every: 5,
            ..self.form.clone()
        }
    }

    /// Starts `req`; a trainer that cannot take it leaves the run "not started" with the
    /// reason on screen.
    pub fn start(&mut self, req: TrainRequest, cmds: &mut dyn Commands) {
        self.begin(Command::Start(Box::new(req)), "starting...", cmds);
    }

    /// Sends a command that starts a run and shows it as starting.
    fn begin(&mut self, command: Command, status: &str, cmds: &mut dyn Commands) {
        self.progress = Progress {
            running: true,
            status: status.into(),
            ..Progress::default()
        };
        self.error = None;
        if let Err(e) = cmds.train(command) {
            self.progress.running = false;
            self.progress.status = "not started".into();
            self.error = Some(e.to_string());
        }
    }

    /// "Resume run...": continues the run in `dir` from its last checkpoint, for the
    /// form's number of epochs in all when that is more than the run asked for (its own
    /// total otherwise). The trainer reads the checkpoint; a folder that cannot be resumed
    /// comes back as an error on screen.
    pub fn resume_run(&mut self, dir: &std::path::Path, cmds: &mut dyn Commands) {
        let command = Command::ResumeRun {
            dir: dir.to_path_buf(),
            epochs: self.form.epochs,
        };
        self.begin(command, "reading the checkpoint...", cmds);
    }

    /// Opens the folder dialog for `what` (the answer arrives in a later frame).
    fn pick_folder(&mut self, what: FolderFor, ctx: &egui::Context) {
        let dialog = rfd::AsyncFileDialog::new().pick_folder();
        if let Err(e) = dialogs::open(&mut self.dialog, what, ctx, dialog) {
            self.error = Some(e);
        }
    }

    /// Trains on the dataset in `dir` from now on (what the "Folder..." dialog calls).
    pub fn choose_dataset_folder(&mut self, dir: &std::path::Path) {
        if dir.is_dir() {
            self.form.data = DataSource::Dir(dir.to_path_buf());
            self.error = None;
        } else {
            self.error = Some(format!("{}: not a folder", dir.display()));
        }
    }

    fn send(&mut self, c: Command, cmds: &mut dyn Commands) {
        if let Err(e) = cmds.train(c) {
            self.error = Some(e.to_string());
        }
    }

    /// Follows the trainer's events.
    pub fn on_event(&mut self, e: &AppEvent) {
        let AppEvent::Train(e) = e else { return };
        let t = &mut self.progress;
        match e {
            Event::Device { name, reason } => t.device = Some(format!("{name} ({reason})")),
            Event::Loading(p) => t.status = format!("loading images: {} of {}", p.done, p.total),
            Event::Started { total_steps, .. } => {
                t.total_steps = *total_steps;
                t.status = "training".into();
            }
            Event::WarmingUp => t.status = "first step: compiling and tuning GPU kernels".into(),
            Event::Step(s) => {
                t.step = s.global_step;
                t.first_report.get_or_insert((s.global_step, Instant::now()));
                t.status = format!(
                    "epoch {}: loss {:.4}, {:.0} images/s",
                    s.epoch, s.loss, s.images_per_s
                );
            }
            Event::Evaluating { epoch } => t.status = format!("epoch {epoch}: evaluating"),
            Event::Epoch(m) => t.status = format!("epoch {}: test accuracy {:.4}", m.epoch, m.test_accuracy),
            Event::Pruned { sparsity, .. } => t.status = format!("pruned to sparsity {sparsity:.3}"),
            Event::Checkpoint { .. } => {}
            Event::EarlierEpochs { epochs, .. } => {
                t.status = format!("resumed after epoch {}", epochs.len());
            }
            Event::RolledBack { epoch, lr, .. } => {
                t.status = format!("epoch {epoch}: non-finite loss, rolled back; learning rate {lr:.2e}")
            }
            Event::Paused => {
                t.paused = true;
                t.paused_at = Some(Instant::now());
            }
            Event::Resumed => {
                t.paused = false;
                if let Some(p) = t.paused_at.take()
                    && t.first_report.is_some()
                {
                    t.paused_s += p.elapsed().as_secs_f64();
                }
            }
            Event::Finished {
                stopped,
                test_accuracy,
                early_stopped,
                ..
            } => {
                t.running = false;
                t.paused = false;
                let acc = test_accuracy.map_or_else(|| "-".into(), |a| format!("{a:.4}"));
                let how = match (stopped, early_stopped) {
                    (true, _) => "stopped",
                    (false, true) => "stopped early (no better validation loss)",
                    (false, false) => "finished",
                };
                t.status = format!("{how}; test accuracy {acc}");
            }
            Event::Failed(err) => {
                t.running = false;
                t.status = "failed".into();
                self.error = Some(err.to_string());
            }
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        match dialogs::answer(&mut self.dialog) {
            Some((FolderFor::Dataset, Some(dir))) => self.choose_dataset_folder(&dir),
            Some((FolderFor::Resume, Some(dir))) if !self.running() => self.resume_run(&dir, cmds),
            _ => {}
        }
        ui.heading("Training");
        let running = self.running();
        ui.add_enabled_ui(!running, |ui| {
            egui::Grid::new("train-grid").num_columns(2).show(ui, |ui| {
                self.dataset_row(ui);
                self.basic_rows(ui);
                self.pruning_rows(ui);
                let device = &mut self.form.device;
                row(ui, "Device", |ui| {
                    egui::ComboBox::from_id_salt("device")
                        .selected_text(device.to_string())
                        .show_ui(ui, |ui| {
                            for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
                                ui.selectable_value(device, d, d.to_string());
                            }
                        })
                        .response
                });
            });
        });
        self.run_buttons(ui, running, cmds);
        self.status_lines(ui);
    }

    /// The dataset: a choice of the built-in ones, or a folder.
    fn dataset_row(&mut self, ui: &mut Ui) {
        ui.label("Dataset");
        ui.horizontal(|ui| {
            let data = &mut self.form.data;
            let shown = match data {
                DataSource::Mnist => "MNIST".to_string(),
                DataSource::FashionMnist => "Fashion-MNIST".to_string(),
                DataSource::Cifar10 => "CIFAR-10".to_string(),
                DataSource::Dir(path) => path
                    .file_name()
                    .map_or(path.display().to_string(), |n| n.to_string_lossy().into_owned()),
            };
            let full = data.to_string();
            let combo = egui::ComboBox::from_id_salt("dataset")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(data, DataSource::Mnist, "MNIST");
                    ui.selectable_value(data, DataSource::FashionMnist, "Fashion-MNIST");
                    ui.selectable_value(data, DataSource::Cifar10, "CIFAR-10")
                        .on_hover_text(format!(
                            "${} or ~/{}",
                            crate::data::dataset::CIFAR10_ENV,
                            crate::data::dataset::CIFAR10_DIRS[0]
                        ));
                })
                .response;
            name(&combo, "Dataset");
            combo.on_hover_text(full);
            if ui
                .button("Folder...")
                .on_hover_text(
                    "A folder with the four IDX files (gzipped or not), train/ and test/ class folders of PNG or JPEG images, or CIFAR-10's binary batches",
                )
                .clicked()
            {
                self.pick_folder(FolderFor::Dataset, ui.ctx());
            }
        });
        ui.end_row();
    }

    /// Preset, epochs, batch, learning rate and the training-image limit (0: all).
    fn basic_rows(&mut self, ui: &mut Ui) {
        let f = &mut self.form;
        row(ui, "Preset", |ui| {
            egui::ComboBox::from_id_salt("preset")
                .selected_text(f.preset.name())
                .show_ui(ui, |ui| {
                    for p in Preset::ALL {
                        ui.selectable_value(&mut f.preset, p, p.name());
                    }
                })
                .response
        });
        row(ui, "Epochs", |ui| {
            ui.add(egui::DragValue::new(&mut f.epochs).range(1..=500))
        });
        row(ui, "Batch", |ui| {
            ui.add(egui::DragValue::new(&mut f.batch).range(1..=1024))
        });
        row(ui, "Learning rate", |ui| {
            ui.add(egui::DragValue::new(&mut f.lr).speed(1e-4).range(1e-6..=1.0))
        });
        let mut limit = f.limit_train.unwrap_or(0);
        row(ui, "Limit train images", |ui| {
            ui.add(egui::DragValue::new(&mut limit).range(0..=60_000))
        });
        f.limit_train = (limit > 0).then_some(limit);
    }

    /// The pruning schedule and its settings.
    fn pruning_rows(&mut self, ui: &mut Ui) {
        let prune = &mut self.form.prune;
        let mut kind = prune.kind();
        row(ui, "Pruning", |ui| {
            egui::ComboBox::from_id_salt("prune")
                .selected_text(kind.label())
                .show_ui(ui, |ui| {
                    for k in PruneKind::ALL {
                        ui.selectable_value(&mut kind, k, k.label());
                    }
                })
                .response
        });
        if kind != prune.kind() {
            *prune = kind.default_schedule();
        }
        use crate::train::messages::PruneSchedule;
        match prune {
            PruneSchedule::Lobster { lambda, pwe, twt, .. } => {
                row(ui, "LOBSTER lambda", |ui| {
                    ui.add(egui::DragValue::new(lambda).speed(1e-5).range(0.0..=1.0))
                });
                row(ui, "Patience (pwe)", |ui| {
                    ui.add(egui::DragValue::new(pwe).range(0..=50))
                });
                row(ui, "Tolerance (twt)", |ui| {
                    ui.add(egui::DragValue::new(twt).speed(0.01).range(0.0..=1.0))
                });
            }
            PruneSchedule::Gmp { target } => {
                row(ui, "Target sparsity", |ui| {
                    ui.add(egui::Slider::new(target, 0.0..=0.99))
                });
            }
            PruneSchedule::None => {}
        }
    }

    /// Start, Resume run..., Pause / Resume and Stop.
    fn run_buttons(&mut self, ui: &mut Ui, running: bool, cmds: &mut dyn Commands) {
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Start")).clicked() {
                self.start(self.request(), cmds);
            }
            if ui
                .add_enabled(!running, egui::Button::new("Resume run..."))
                .on_hover_text(
                    "Continue a run folder (the app's or `sparsecaps train --out DIR`'s) from its last checkpoint; Epochs, if larger, is the new total",
                )
                .clicked()
            {
                self.pick_folder(FolderFor::Resume, ui.ctx());
            }
            if self.progress.paused {
                if ui.add_enabled(running, egui::Button::new("Resume")).clicked() {
                    self.send(Command::Resume, cmds);
                }
            } else if ui.add_enabled(running, egui::Button::new("Pause")).clicked() {
                self.send(Command::Pause, cmds);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                self.send(Command::Stop, cmds);
            }
        });
    }

    /// The device line (one line, the rest on hover), the bar, the status, the frame time
    /// and the error line: always there, so the panels below do not move when a run starts
    /// or fails.
    fn status_lines(&self, ui: &mut Ui) {
        let device = self
            .progress
            .device
            .as_deref()
            .unwrap_or("chosen when a run starts");
        let text = egui::RichText::new(format!("Device: {device}")).small();
        ui.add(egui::Label::new(text).truncate()).on_hover_text(device);
        let t = &self.progress;
        let (frac, text) = if t.total_steps > 0 {
            let eta = t
                .eta_s()
                .filter(|_| t.running)
                .map(|e| format!(", ETA {e:.0} s"))
                .unwrap_or_default();
            (
                t.step as f32 / t.total_steps as f32,
                format!("step {}/{}{eta}", t.step, t.total_steps),
            )
        } else {
            (0.0, "no run yet".to_string())
        };
        ui.add(egui::ProgressBar::new(frac).text(text));
        ui.label(&t.status);
        ui.small(format!("UI frame: {:.1} ms", self.frame_ms));
        error_line(ui, self.error.as_deref());
    }
}

/// An error in red on a line of its own that is there even when there is no error; a long
/// one is cut to that line (all of it on hover), so what is below never moves.
pub fn error_line(ui: &mut Ui, error: Option<&str>) {
    let error = error.unwrap_or("");
    let text = egui::RichText::new(error).color(egui::Color32::LIGHT_RED);
    ui.add(egui::Label::new(text).truncate()).on_hover_text(error);
}
