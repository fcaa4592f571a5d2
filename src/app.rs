//! The desktop app: state, the event pump, and the panel layout. The trainer thread owns
//! the training model and the inspection worker owns the model being inspected and pruned;
//! the UI only sends commands and drains events each frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use eframe::egui;

use crate::data::{DataSource, Split};
use crate::inspect::{
    DigitInspection, InspectCommand, InspectEvent, Inspector, KeepRequest, ModelSummary, SliderMethod,
    SliderResult, mnist_held_out, mnist_style,
};
use crate::train::messages::PruneSchedule;
use crate::train::{Command, EpochMetrics, Event, TrainRequest, Trainer, Waker};
use crate::ui;

mod form;
pub use form::{STORAGE_KEY, SavedForm, TrainChoice, TrainForm};

/// The model that ships with the app (MNIST, `small` preset; see README).
pub static BUILTIN_MODEL: &[u8] = include_bytes!("../assets/models/mnist-small.safetensors");

/// The shipped MNIST model with 75% of its capsules removed, fine-tuned and compacted.
pub static BUILTIN_PRUNED_MODEL: &[u8] = include_bytes!("../assets/models/mnist-small-pruned.safetensors");

/// The models built into the app (see README for the commands that made them); the first
/// is loaded at start.
pub static BUILTIN_MODELS: [(&str, &[u8]); 2] = [
    ("MNIST small, dense", BUILTIN_MODEL),
    ("MNIST small, 75% capsules pruned", BUILTIN_PRUNED_MODEL),
];
pub use crate::inspect::HELD_OUT;

/// One progress report, for the curves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPoint {
    /// Global step.
    pub step: usize,
    /// Mean loss since the last report.
    pub loss: f64,
    /// Training accuracy since the last report.
    pub accuracy: f64,
}

/// What the UI knows about the running training.
#[derive(Debug, Clone, Default)]
pub struct TrainingView {
    /// A run is going.
    pub running: bool,
    /// It is paused.
    pub paused: bool,
    /// Steps done.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// When the run started.
    pub started: Option<Instant>,
    /// Progress reports.
    pub history: Vec<StepPoint>,
    /// Finished epochs and the step at which each ended.
    pub epochs: Vec<(EpochMetrics, usize)>,
    /// Device in use and why.
    pub device: Option<String>,
    /// One-line status.
    pub status: String,
}

impl TrainingView {
    /// Estimated seconds left.
    pub fn eta_s(&self) -> Option<f64> {
        let t = self.started?.elapsed().as_secs_f64();
        (self.step > 0).then(|| t / self.step as f64 * (self.total_steps.saturating_sub(self.step)) as f64)
    }
}

/// Everything the app shows and edits.
pub struct AppState {
    /// Training form.
    pub train: TrainForm,
    /// Training progress.
    pub training: TrainingView,
    /// The model in the inspector.
    pub model: Option<ModelSummary>,
    /// Alive map after the last slider move.
    pub alive: Option<Vec<bool>>,
    /// Activation per dense capsule index for the current digit.
    pub activations: Option<Vec<f32>>,
    /// The canvas.
    pub canvas: ui::canvas::Canvas,
    /// The last inspection.
    pub inspection: Option<DigitInspection>,
    /// The last perturbed reconstruction.
    pub reconstruction: Option<Vec<f32>>,
    /// Offsets of the winning capsule's dimensions.
    pub perturb: Vec<f32>,
    /// Slider value.
    pub sparsity: f64,
    /// How the slider prunes.
    pub slider_method: SliderMethod,
    /// Fine-tuning after "Keep": (steps done, steps in all).
    pub tuning: Option<(usize, usize)>,
    /// Routing iteration shown in the heatmap (0-based).
    pub routing_iter: usize,
    /// Counts inspections, so views built from one can be cached.
    pub inspection_id: u64,
    /// What the routing view shows: capsule types, or the capsules of one type.
    pub routing_view: ui::routing::RoutingView,
    /// The routing heatmap texture and the (inspection, iteration, view) it shows.
    pub routing_texture: Option<((u64, usize, ui::routing::RoutingView), egui::TextureHandle)>,
    /// The last slider result.
    pub slider: Option<SliderResult>,
    /// (sparsity, accuracy) of every slider result.
    pub slider_history: Vec<(f64, f64)>,
    /// Path for export / load.
    pub model_path: String,
    /// Path of an image to load into the canvas.
    pub image_path: String,
    /// Result of the last export or load.
    pub io_status: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// Test digits for "random digit".
    pub test_digits: Option<Split>,
    /// The label of the test image shown, when one was picked from the model's dataset.
    pub picked_label: Option<usize>,
    /// Time the UI spends building a frame, ms (moving average).
    pub frame_ms: f64,
    trainer: Option<Trainer>,
    inspector: Option<Inspector>,
    next_digit: usize,
    run_dir: PathBuf,
}

impl AppState {
    /// Starts the worker threads, loads the built-in model and MNIST's test digits.
    pub fn new(waker: Option<Waker>) -> Self {
        let mut state = Self {
            train: TrainForm::default(),
            training: TrainingView::default(),
            model: None,
            alive: None,
            activations: None,
            canvas: ui::canvas::Canvas::default(),
            inspection: None,
            reconstruction: None,
            perturb: vec![0.0; 16],
            sparsity: 0.0,
            slider_method: SliderMethod::Magnitude,
            tuning: None,
            routing_iter: usize::MAX,
            inspection_id: 0,
            routing_view: ui::routing::RoutingView::Types,
            routing_texture: None,
            slider: None,
            slider_history: Vec::new(),
            model_path: std::env::temp_dir()
                .join("sparsecaps-export.safetensors")
                .display()
                .to_string(),
            image_path: String::new(),
            io_status: None,
            error: None,
            test_digits: None,
            picked_label: None,
            frame_ms: 0.0,
            trainer: None,
            inspector: None,
            next_digit: 0,
            run_dir: std::env::temp_dir().join(format!("sparsecaps-app-{}", std::process::id())),
        };
        match Trainer::spawn(waker.clone()) {
            Ok(t) => state.trainer = Some(t),
            Err(e) => state.error = Some(format!("cannot start the trainer: {e}")),
        }
        match Inspector::spawn(Device::flex(), waker) {
            Ok(i) => state.inspector = Some(i),
            Err(e) => state.error = Some(format!("cannot start the inspector: {e}")),
        }
        match mnist_held_out() {
            Ok((test, held)) => {
                state.send(InspectCommand::SetHeldOut(Box::new(held)));
                state.test_digits = Some(test);
            }
            Err(e) => state.error = Some(e.to_string()),
        }
        state.load_builtin(0);
        state
    }

    /// Queues a command for the inspection worker; a full queue or a stopped worker is an
    /// error on screen, not a silent no-op.
    fn send(&mut self, c: InspectCommand) {
        let sent = self.inspector.as_ref().map(|i| i.send(c));
        if sent == Some(false) {
            self.error = Some("the inspection worker is busy or has stopped: try again".into());
        }
    }

    /// Queues a command for the trainer; if it cannot take it, the reason is on screen and
    /// false is returned.
    fn command(&mut self, c: Command) -> bool {
        let sent = self.trainer.as_ref().is_some_and(|t| t.send(c));
        if !sent {
            self.error = Some("the trainer thread is busy or has stopped: try again".into());
        }
        sent
    }

    /// Starts a training run with the form's settings.
    pub fn start_training(&mut self) {
        let f = &self.train;
        let req = TrainRequest {
            data: f.data.parse().unwrap_or(DataSource::Mnist),
            preset: f.preset,
            epochs: f.epochs.max(1),
            batch: f.batch.max(1),
            lr: f.lr,
            device: f.device,
            limit_train: (f.limit_train > 0).then_some(f.limit_train),
            limit_test: Some(2000),
            out_dir: Some(self.run_dir.clone()),
            readback_every: 5,
            prune: match f.prune {
                TrainChoice::None => PruneSchedule::None,
                TrainChoice::Lobster => PruneSchedule::Lobster {
                    lambda: f.lambda,
                    pwe: f.pwe,
                    twt: f.twt,
                    lambda_decay: 1.0,
                    tolerance: 0.0,
                },
                TrainChoice::Gmp => PruneSchedule::Gmp { target: f.target },
            },
            ..TrainRequest::default()
        };
        self.start_request(req);
    }

    /// "Resume run...": continues the run in `dir` from its last checkpoint, for the
    /// form's number of epochs in all when that is more than the run asked for (its own
    /// total otherwise). A folder that cannot be resumed is an error on screen.
    pub fn resume_run(&mut self, dir: &Path) {
        let asked = self.train.epochs;
        match crate::train::resume::resume_request(dir, |done| (asked > done).then_some(asked)) {
            Ok(req) => self.start_request(req),
            Err(e) => self.error = Some(crate::errors::error_chain(&e)),
        }
    }

    fn start_request(&mut self, req: TrainRequest) {
        self.training = TrainingView {
            running: true,
            started: Some(Instant::now()),
            status: "starting...".into(),
            ..TrainingView::default()
        };
        self.error = None;
        if !self.command(Command::Start(Box::new(req))) {
            self.training.running = false;
            self.training.status = "not started".into();
        }
    }

    /// Pauses the run.
    pub fn pause_training(&mut self) {
        self.command(Command::Pause);
    }

    /// Resumes the run.
    pub fn resume_training(&mut self) {
        self.command(Command::Resume);
    }

    /// Stops the run.
    pub fn stop_training(&mut self) {
        self.command(Command::Stop);
    }

    /// The canvas changed: preprocess and inspect.
    pub fn canvas_changed(&mut self) {
        let px = ui::canvas::CANVAS_PX;
        self.canvas.input = mnist_style(&self.canvas.ink, px, px);
        self.send(InspectCommand::Inspect(self.canvas.input.clone()));
    }

    /// The input the current model takes, (channels, height, width); MNIST's without one.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.model.as_ref().map_or((1, 28, 28), |m| m.input)
    }

    /// Whether the current model takes drawn digits (28x28 grey); otherwise the canvas
    /// panel picks test images of the model's own dataset or loads image files.
    pub fn takes_digits(&self) -> bool {
        self.model.as_ref().is_none_or(ModelSummary::takes_digits)
    }

    /// Shows the next test digit (or, for a model that takes other images, the next test
    /// image of its own dataset).
    pub fn random_digit(&mut self) {
        if !self.takes_digits() {
            self.next_digit = (self.next_digit * 7919 + 13) % crate::inspect::worker::OWN_TEST_IMAGES;
            self.send(InspectCommand::PickTestImage(self.next_digit));
            return;
        }
        if let Some(d) = &self.test_digits
            && !d.is_empty()
        {
            self.next_digit = (self.next_digit * 7919 + 13) % d.len();
            self.canvas.clear();
            self.canvas.input = d.image_f32(self.next_digit);
            self.send(InspectCommand::Inspect(self.canvas.input.clone()));
        }
    }

    /// Loads an image file into the canvas input.
    pub fn load_image(&mut self, path: &Path) {
        let digits = self.takes_digits();
        let loaded = if digits {
            crate::inspect::load_image(path, 28, 28).map(|px| mnist_style(&px, 28, 28))
        } else {
            crate::inspect::image::load_image_as(path, self.input_shape())
        };
        match loaded {
            Ok(px) => {
                self.canvas.clear();
                self.canvas.input = px;
                self.picked_label = None;
                self.send(InspectCommand::Inspect(self.canvas.input.clone()));
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// The slider moved.
    pub fn sparsity_changed(&mut self) {
        self.send(InspectCommand::SetSparsity {
            sparsity: self.sparsity,
            method: self.slider_method,
        });
    }

    /// "Keep": commit the slider's pruning and fine-tune under its mask for one epoch over
    /// the training form's dataset (limited to its image limit).
    pub fn keep_pruning(&mut self) {
        let data: DataSource = self.train.data.parse().unwrap_or(DataSource::Mnist);
        let images = match self.train.limit_train {
            0 => usize::MAX,
            n => n,
        };
        self.tuning = Some((0, 1));
        self.io_status = Some(format!("fine-tuning under the mask on {data}..."));
        self.send(InspectCommand::Keep(KeepRequest {
            data,
            images,
            epochs: 1,
        }));
    }

    /// Loads built-in model `i` of [`BUILTIN_MODELS`] into the inspector.
    pub fn load_builtin(&mut self, i: usize) {
        if let Some((name, bytes)) = BUILTIN_MODELS.get(i) {
            self.io_status = Some(format!("loading the built-in {name}..."));
            self.send(InspectCommand::LoadBytes { name, bytes });
        }
    }

    /// Trains on the IDX files in `dir` from now on (what the "Folder..." dialog calls).
    pub fn choose_dataset_folder(&mut self, dir: &Path) {
        if dir.is_dir() {
            self.train.data = dir.display().to_string();
            self.error = None;
        } else {
            self.error = Some(format!("{}: not a folder", dir.display()));
        }
    }

    /// "Cancel" while Keep fine-tunes: stops it after the current step.
    pub fn cancel_keep(&mut self) {
        if let Some(i) = &self.inspector {
            i.cancel();
        }
    }

    /// "Reset": back to the model as loaded, dense.
    pub fn reset_pruning(&mut self) {
        self.sparsity = 0.0;
        self.send(InspectCommand::Reset);
    }

    /// A dimension slider moved.
    pub fn send_perturbation(&mut self) {
        self.send(InspectCommand::Perturb(self.perturb.clone()));
    }

    /// Exports the current (pruned) model, compacted.
    pub fn export_to(&mut self, path: &Path) {
        self.io_status = Some(format!("exporting to {}...", path.display()));
        self.send(InspectCommand::Export(path.to_path_buf()));
    }

    /// Loads a model file into the inspector.
    pub fn load_model_from(&mut self, path: &Path) {
        self.io_status = Some(format!("loading {}...", path.display()));
        self.send(InspectCommand::Load(path.to_path_buf()));
    }

    /// Drains the worker threads' events (call once per frame).
    pub fn pump(&mut self) {
        while let Some(e) = self.trainer.as_ref().and_then(Trainer::try_event) {
            self.on_train_event(e);
        }
        while let Some(e) = self.inspector.as_ref().and_then(Inspector::try_event) {
            self.on_inspect_event(e);
        }
    }

    fn on_train_event(&mut self, e: Event) {
        let t = &mut self.training;
        match e {
            Event::Device { name, reason } => t.device = Some(format!("{name} ({reason})")),
            Event::Loading(p) => t.status = format!("loading images: {} of {}", p.done, p.total),
            Event::Started { total_steps, .. } => {
                t.total_steps = total_steps;
                t.status = "training".into();
            }
            Event::WarmingUp => t.status = "first step: compiling and tuning GPU kernels".into(),
            Event::Step(s) => {
                t.step = s.global_step;
                t.history.push(StepPoint {
                    step: s.global_step,
                    loss: s.loss,
                    accuracy: s.accuracy,
                });
                t.status = format!(
                    "epoch {}: loss {:.4}, {:.0} images/s",
                    s.epoch, s.loss, s.images_per_s
                );
            }
            Event::Evaluating { epoch } => t.status = format!("epoch {epoch}: evaluating"),
            Event::Epoch(m) => {
                t.status = format!("epoch {}: test accuracy {:.4}", m.epoch, m.test_accuracy);
                let step = t.step;
                t.epochs.push((m, step));
            }
            Event::Pruned { sparsity, .. } => t.status = format!("pruned to sparsity {sparsity:.3}"),
            Event::Checkpoint { path, .. } => {
                self.send(InspectCommand::Load(path));
            }
            Event::RolledBack { epoch, lr, .. } => {
                t.status = format!("epoch {epoch}: non-finite loss, rolled back; learning rate {lr:.2e}")
            }
            Event::Paused => t.paused = true,
            Event::Resumed => t.paused = false,
            Event::Finished {
                stopped,
                test_accuracy,
                ..
            } => {
                t.running = false;
                t.paused = false;
                let acc = test_accuracy
                    .map(|a| format!("{a:.4}"))
                    .unwrap_or_else(|| "-".into());
                t.status = format!(
                    "{}; test accuracy {acc}",
                    if stopped { "stopped" } else { "finished" }
                );
            }
            Event::Failed(msg) => {
                t.running = false;
                t.status = "failed".into();
                self.error = Some(msg);
            }
        }
    }

    fn on_inspect_event(&mut self, e: InspectEvent) {
        match e {
            InspectEvent::Inspected(r) => {
                if let Some(m) = &self.model {
                    let mut act = vec![0.0; m.alive.len()];
                    for (a, i) in r.activations.iter().zip(&r.indices) {
                        if let Some(slot) = act.get_mut(*i) {
                            *slot = *a;
                        }
                    }
                    self.activations = Some(act);
                }
                self.reconstruction = None;
                self.inspection_id += 1;
                self.inspection = Some(*r);
            }
            InspectEvent::Pruned(r) => {
                if let Some(a) = r.accuracy {
                    self.slider_history.push((r.sparsity, a));
                }
                self.alive = Some(r.alive.clone());
                self.slider = Some(r);
                if self.inspection.is_some() {
                    self.send(InspectCommand::Inspect(self.canvas.input.clone()));
                }
            }
            InspectEvent::Reconstruction(img) => self.reconstruction = Some(img),
            InspectEvent::Tuning { done, total } => self.tuning = Some((done, total)),
            InspectEvent::Picked { pixels, label } => {
                self.canvas.clear();
                self.canvas.input = pixels;
                self.picked_label = Some(label);
            }
            InspectEvent::KeepCancelled => {
                self.tuning = None;
                self.io_status =
                    Some("Keep cancelled: the slider's pruning is as it was, not fine-tuned".into());
            }
            InspectEvent::Kept(m) => {
                self.tuning = None;
                self.io_status = Some("kept: fine-tuned under the mask".into());
                self.model = Some(*m);
            }
            InspectEvent::ModelReady(m) => {
                self.io_status = Some(format!(
                    "model: {}/{} capsules alive",
                    m.alive.iter().filter(|a| **a).count(),
                    m.alive.len()
                ));
                self.alive = None;
                self.slider = None;
                self.sparsity = 0.0;
                self.model = Some(*m);
                if self.inspection.is_some() {
                    self.send(InspectCommand::Inspect(self.canvas.input.clone()));
                }
            }
            InspectEvent::Exported {
                path,
                bytes,
                dense_ms,
                compact_ms,
            } => {
                self.io_status = Some(format!(
                    "exported {} ({:.2} MB); batch-32 inference dense {dense_ms:.1} ms, compact {compact_ms:.1} ms",
                    path.display(),
                    bytes as f64 / 1e6
                ));
            }
            InspectEvent::Failed(msg) => {
                self.tuning = None;
                self.error = Some(msg);
            }
        }
    }

    /// Lays out every panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.pump();
        egui::Panel::left("training")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    ui::training::show(ui, self);
                    ui.separator();
                    ui::pruning::show(ui, self);
                });
            });
        egui::Panel::right("inspection")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| ui::inspection::show(ui, self));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            ui::canvas::show(ui, self);
            ui.separator();
            ui::capsule_map::show(ui, self);
            ui.separator();
            ui::curves::show(ui, self);
        });
    }
}

/// The eframe app.
pub struct SparsecapsApp {
    state: AppState,
}

impl eframe::App for SparsecapsApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = Instant::now();
        self.state.ui(ui);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.state.frame_ms = 0.9 * self.state.frame_ms + 0.1 * ms;
        if self.state.training.running {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(200));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.state.saved_form());
    }
}

/// Opens the window and runs until it is closed.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("sparsecaps")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native(
        "sparsecaps",
        options,
        Box::new(|cc| {
            let ctx = cc.egui_ctx.clone();
            let waker: Waker = Arc::new(move || ctx.request_repaint());
            let mut state = AppState::new(Some(waker));
            if let Some(saved) = cc
                .storage
                .and_then(|s| eframe::get_value::<SavedForm>(s, STORAGE_KEY))
            {
                state.restore_form(saved);
            }
            Ok(Box::new(SparsecapsApp { state }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
