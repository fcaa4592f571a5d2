//! The desktop app: the panels, the [`Workers`] behind the [`Commands`] handle, and the
//! eframe glue. The trainer thread owns the training model and the inspection worker owns
//! the model being inspected and pruned; each frame the app drains their events into every
//! panel and lets the panels draw (and send commands).

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::*;
use eframe::egui;

use crate::inspect::outbox::Outbox;
use crate::inspect::{InspectCommand, Inspector, PruneMethod};
use crate::threads::SendError;
use crate::train::{Command, Event, TrainRequest, Trainer, Waker};
use crate::ui::{
    AppEvent, CanvasPanel, CapsuleMapPanel, Commands, CurvesPanel, InspectionPanel, PrunePanel, TrainingPanel,
};

pub use crate::inspect::HELD_OUT;
pub use crate::inspect::builtin::BUILTIN_MODELS;

/// The worker threads, as the panels' [`Commands`] handle.
#[derive(Default)]
pub struct Workers {
    trainer: Option<Trainer>,
    inspector: Option<Inspector>,
    /// Latest-wins inspection commands waiting for room in the inspector's queue.
    outbox: Outbox,
}

impl Workers {
    /// Starts both threads; one that cannot start is reported and left out (its commands
    /// then fail as [`SendError::Stopped`]).
    pub fn spawn(waker: Option<Waker>) -> (Self, Vec<String>) {
        let mut errors = Vec::new();
        let trainer = Trainer::spawn(waker.clone())
            .map_err(|e| errors.push(format!("cannot start the trainer: {e}")))
            .ok();
        let inspector = Inspector::spawn(Device::flex(), waker)
            .map_err(|e| errors.push(format!("cannot start the inspector: {e}")))
            .ok();
        let workers = Self {
            trainer,
            inspector,
            outbox: Outbox::default(),
        };
        (workers, errors)
    }

    /// Inspection commands waiting for room in the inspector's queue.
    pub fn waiting(&self) -> usize {
        self.outbox.len()
    }

    /// Sends the inspection commands that waited for room (call once per frame).
    pub fn flush(&mut self) {
        if let Some(i) = &self.inspector {
            self.outbox.flush(|c| i.send_or_return(c));
        }
    }

    /// The next event of either thread, if one is waiting.
    pub fn try_event(&self) -> Option<AppEvent> {
        let train = self.trainer.as_ref().and_then(Trainer::try_event);
        train.map(AppEvent::Train).or_else(|| {
            self.inspector
                .as_ref()
                .and_then(Inspector::try_event)
                .map(AppEvent::Inspect)
        })
    }
}

impl Drop for Workers {
    /// Stops both threads at once and waits for them together, so closing the window
    /// waits at most [`crate::threads::JOIN_WAIT`].
    fn drop(&mut self) {
        if let Some(t) = &mut self.trainer {
            t.stop();
        }
        if let Some(i) = &mut self.inspector {
            i.stop();
        }
        let deadline = Instant::now() + crate::threads::JOIN_WAIT;
        if let Some(t) = &mut self.trainer {
            t.wait_until(deadline);
        }
        if let Some(i) = &mut self.inspector {
            i.wait_until(deadline);
        }
    }
}

impl Commands for Workers {
    fn train(&mut self, command: Command) -> Result<(), SendError> {
        self.trainer
            .as_ref()
            .ok_or(SendError::Stopped("trainer"))?
            .send(command)
    }

    /// Sends at once where there is room; the latest slider position, image, offsets
    /// or model waits in the outbox while the inspector is busy.
    fn inspect(&mut self, command: InspectCommand) -> Result<(), SendError> {
        let inspector = self.inspector.as_ref().ok_or(SendError::Stopped("inspector"))?;
        if matches!(command, InspectCommand::Keep(_)) {
            // a Cancel clicked after the last Keep ended (its answer still on the way)
            // must not stop this one; one clicked from now on, queued or running, does
            inspector.clear_cancel();
        }
        self.outbox.send(command, |c| inspector.send_or_return(c))
    }

    fn cancel_keep(&mut self) {
        if let Some(i) = &self.inspector {
            i.cancel();
        }
    }
}

/// The app: its panels and the workers they command.
pub struct AppState {
    /// Training form and progress.
    pub training: TrainingPanel,
    /// Sparsity slider, Keep, export and load.
    pub pruning: PrunePanel,
    /// Drawing canvas or test-image picker.
    pub canvas: CanvasPanel,
    /// Prediction, reconstruction and routing of the current image.
    pub inspection: InspectionPanel,
    /// Primary capsules, alive and active.
    pub capsule_map: CapsuleMapPanel,
    /// Training, sparsity and slider curves.
    pub curves: CurvesPanel,
    /// The worker threads.
    pub workers: Workers,
}

/// What is kept between sessions: the training form, the model path and the slider's
/// method.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SavedForm {
    /// The training form.
    pub train: TrainRequest,
    /// The model file field.
    pub model_path: String,
    /// How the slider prunes.
    pub slider_method: PruneMethod,
}

/// Storage key of [`SavedForm`].
pub const STORAGE_KEY: &str = "sparsecaps-form";

impl AppState {
    /// Starts the worker threads, loads the built-in model and MNIST's test digits.
    pub fn new(waker: Option<Waker>) -> Self {
        let (workers, errors) = Workers::spawn(waker);
        let mut state = Self {
            training: TrainingPanel::default(),
            pruning: PrunePanel::default(),
            canvas: CanvasPanel::default(),
            inspection: InspectionPanel::default(),
            capsule_map: CapsuleMapPanel::default(),
            curves: CurvesPanel::default(),
            workers,
        };
        state.training.error = errors.into_iter().next();
        // decoded by the worker, not here on the UI thread
        if let Err(e) = state.workers.inspect(InspectCommand::LoadMnistDigits) {
            state.pruning.error = Some(e.to_string());
        }
        state.pruning.load_builtin(0, &mut state.workers);
        state
    }

    /// What is kept between sessions.
    pub fn saved_form(&self) -> SavedForm {
        SavedForm {
            train: self.training.form.clone(),
            model_path: self.pruning.model_path.clone(),
            slider_method: self.pruning.method,
        }
    }

    /// Restores what was kept; settings out of range leave the defaults.
    pub fn restore_form(&mut self, saved: SavedForm) {
        if saved.train.validate().is_ok() {
            self.training.form = saved.train;
        }
        self.pruning.model_path = saved.model_path;
        self.pruning.method = saved.slider_method;
    }

    /// Hands one event to every panel; a new checkpoint of the app's run goes to the
    /// inspector, so the panels show the model as it trains, unless the user loaded or
    /// kept a model of their own since the run started.
    pub fn dispatch(&mut self, e: &AppEvent) {
        if let AppEvent::Train(Event::Checkpoint { path, .. }) = e
            && self.pruning.follow_run
            && let Err(err) = self.workers.inspect(InspectCommand::Load(path.clone()))
        {
            self.pruning.error = Some(err.to_string());
        }
        self.training.on_event(e);
        self.pruning.on_event(e);
        self.canvas.on_event(e);
        self.inspection.on_event(e);
        self.capsule_map.on_event(e);
        self.curves.on_event(e);
    }

    /// Drains the worker threads' events into the panels and sends the inspection commands
    /// that waited for room (call once per frame, and while the window is hidden).
    pub fn pump(&mut self) {
        self.workers.flush();
        while let Some(e) = self.workers.try_event() {
            self.dispatch(&e);
        }
    }

    /// Lays out every panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.pump();
        // "Keep" fine-tunes on what the training form trains on
        self.pruning.keep_on = (self.training.form.data.clone(), self.training.form.limit_train);
        let cmds = &mut self.workers;
        egui::Panel::left("training")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.training.ui(ui, cmds);
                    ui.separator();
                    self.pruning.ui(ui, cmds);
                });
            });
        egui::Panel::right("inspection")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.inspection.ui(ui, cmds));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            self.canvas.ui(ui, cmds);
            ui.separator();
            self.capsule_map.ui(ui);
            ui.separator();
            self.curves.ui(ui);
        });
    }
}

/// The eframe app.
pub struct SparsecapsApp {
    state: AppState,
}

impl eframe::App for SparsecapsApp {
    /// Runs before every frame and, while the window is hidden (minimised), whenever a
    /// worker wakes it: the events keep flowing, so a trainer never waits on a full queue.
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.state.pump();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = Instant::now();
        self.state.ui(ui);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let t = &mut self.state.training;
        t.frame_ms = 0.9 * t.frame_ms + 0.1 * ms;
        if t.running() {
            ui.ctx().request_repaint_after(Duration::from_millis(200));
        }
        // commands waiting for room are sent at a frame: have one soon, even if the worker
        // has nothing to answer
        if self.state.workers.waiting() > 0 {
            ui.ctx().request_repaint_after(Duration::from_millis(50));
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
