//! Pruning panel: the live sparsity slider (weights by magnitude, or whole capsules) with
//! its accuracy on held-out images, Keep / Reset, and export / load of model files.

use egui::Ui;

use super::commands::{AppEvent, Commands};
use super::dialogs::{self, OpenDialog};
use super::training::error_line;
use crate::data::DataSource;
use crate::inspect::builtin::BUILTIN_MODELS;
use crate::inspect::{InspectCommand, InspectError, InspectEvent, KeepRequest, PruneMethod, SliderResult};
use crate::train::Event;

/// The pruning panel's state.
#[derive(Debug, Clone)]
pub struct PrunePanel {
    /// Slider value.
    pub sparsity: f64,
    /// How the slider prunes.
    pub method: PruneMethod,
    /// The last slider result.
    pub slider: Option<SliderResult>,
    /// Fine-tuning after "Keep": (steps done, steps in all).
    pub tuning: Option<(usize, usize)>,
    /// Path for export / load.
    pub model_path: String,
    /// What "Keep" fine-tunes on: the training form's dataset and image limit (the app
    /// keeps them in step with the form); the dataset the model file names comes first.
    pub keep_on: (DataSource, Option<usize>),
    /// The dataset the model in use was trained on, as its file names it.
    pub model_dataset: Option<String>,
    /// The inspection worker's number of the model on screen (Keep and Export name it).
    pub model_id: u64,
    /// Result of the last load, export or Keep.
    pub status: Option<String>,
    /// The last error of the inspection worker about the model, or of a send.
    pub error: Option<String>,
    /// Whether the model in use has a backbone (the slider can then prune its channels).
    pub backbone: bool,
    /// The "Choose file..." dialog, while it is open.
    pub dialog: Option<OpenDialog<()>>,
    /// Whether each new checkpoint of the app's run becomes the model in use. Loading or
    /// keeping a model turns it off, so a run going on in the background does not replace
    /// it; a new run or "Follow the run" turns it on.
    pub follow_run: bool,
    /// Whether the run was followed before a load or Keep that has not answered yet: a
    /// failed or cancelled one follows again as before.
    follow_before: Option<bool>,
    /// The newest checkpoint of the app's run.
    pub run_checkpoint: Option<(std::path::PathBuf, usize)>,
}

impl Default for PrunePanel {
    fn default() -> Self {
        Self {
            sparsity: 0.0,
            method: PruneMethod::Magnitude,
            slider: None,
            tuning: None,
            model_path: std::env::temp_dir()
                .join("sparsecaps-export.safetensors")
                .display()
                .to_string(),
            keep_on: (DataSource::Mnist, None),
            model_dataset: None,
            model_id: 0,
            status: None,
            error: None,
            backbone: false,
            dialog: None,
            follow_run: true,
            follow_before: None,
            run_checkpoint: None,
        }
    }
}

impl PrunePanel {
    fn send(&mut self, c: InspectCommand, cmds: &mut dyn Commands) -> bool {
        match cmds.inspect(c) {
            Ok(()) => {
                self.error = None;
                true
            }
            Err(e) => {
                self.error = Some(e.to_string());
                false
            }
        }
    }

    /// Loads built-in model `i` of [`BUILTIN_MODELS`].
    pub fn load_builtin(&mut self, i: usize, cmds: &mut dyn Commands) {
        if let Some((name, bytes)) = BUILTIN_MODELS.get(i)
            && self.send(InspectCommand::LoadBytes { name, bytes }, cmds)
        {
            self.stop_following();
            self.status = Some(format!("loading the built-in {name}..."));
        }
    }

    /// Loads the model file at the path field.
    pub fn load_model(&mut self, cmds: &mut dyn Commands) {
        let path = std::path::PathBuf::from(&self.model_path);
        if self.send(InspectCommand::Load(path.clone()), cmds) {
            self.stop_following();
            self.status = Some(format!("loading {}...", path.display()));
        }
    }

    /// Exports the current (pruned) model, compacted, to the path field.
    pub fn export(&mut self, cmds: &mut dyn Commands) {
        let path = std::path::PathBuf::from(&self.model_path);
        let command = InspectCommand::Export {
            path: path.clone(),
            model_id: self.model_id,
            pruning: self.on_screen(),
        };
        if self.send(command, cmds) {
            self.status = Some(format!("exporting to {}...", path.display()));
        }
    }

    /// "Keep": commit the slider's pruning and fine-tune under its mask for one epoch, on
    /// the model's own dataset (the form's when the model names none).
    pub fn keep(&mut self, cmds: &mut dyn Commands) {
        let (form_data, limit) = self.keep_on.clone();
        let data = match &self.model_dataset {
            Some(name) => name.parse().unwrap_or(form_data),
            None => form_data,
        };
        let req = KeepRequest {
            data: data.clone(),
            images: limit.unwrap_or(usize::MAX),
            epochs: 1,
            pruning: self.on_screen(),
            model_id: self.model_id,
        };
        if self.send(InspectCommand::Keep(req), cmds) {
            self.stop_following();
            self.tuning = Some((0, 1));
            self.status = Some(format!("fine-tuning under the mask on {data}..."));
        }
    }

    /// The slider position of the result on screen (its sparsity is what it reached, so
    /// the position is what it came from); with no result on screen, the model is shown
    /// unpruned (a move that failed left the worker where it was).
    fn on_screen(&self) -> (f64, PruneMethod) {
        self.slider
            .as_ref()
            .map_or((0.0, self.method), |r| (r.requested, r.method))
    }

    /// The slider or the method changed.
    fn sparsity_changed(&mut self, cmds: &mut dyn Commands) {
        let c = InspectCommand::SetSparsity {
            sparsity: self.sparsity,
            method: self.method,
        };
        self.send(c, cmds);
    }

    /// A load or Keep was sent: the run's checkpoints stop replacing the model, unless it
    /// fails (see [`Self::follow_again`]).
    fn stop_following(&mut self) {
        self.follow_before.get_or_insert(self.follow_run);
        self.follow_run = false;
    }

    /// The load or Keep that stopped following failed or was cancelled: the model in use
    /// is still the one it was, so the run is followed as before.
    fn follow_again(&mut self) {
        if let Some(before) = self.follow_before.take() {
            self.follow_run = before;
        }
    }

    /// "Follow the run": the run's newest checkpoint becomes the model in use, and so
    /// does every later one.
    pub fn follow_run(&mut self, cmds: &mut dyn Commands) {
        let Some((path, epoch)) = self.run_checkpoint.clone() else {
            return;
        };
        if self.send(InspectCommand::Load(path), cmds) {
            self.follow_run = true;
            self.status = Some(format!("loading the run's epoch {epoch}..."));
        }
    }

    /// Follows the trainer's and the inspection worker's events.
    pub fn on_event(&mut self, e: &AppEvent) {
        let e = match e {
            // the first event of every run the user starts: from now on its checkpoints
            // are shown, until the user loads or keeps a model of their own
            AppEvent::Train(Event::Device { .. }) => {
                self.follow_run = true;
                self.run_checkpoint = None;
                return;
            }
            AppEvent::Train(Event::Checkpoint { path, epoch }) => {
                self.run_checkpoint = Some((path.clone(), *epoch));
                return;
            }
            AppEvent::Train(_) => return,
            AppEvent::Inspect(e) => e,
        };
        match e {
            InspectEvent::Pruned(r) => self.slider = Some(r.clone()),
            InspectEvent::Tuning { done, total } => self.tuning = Some((*done, *total)),
            InspectEvent::KeepCancelled => {
                self.follow_again();
                self.tuning = None;
                self.status =
                    Some("Keep cancelled: the slider's pruning is as it was, not fine-tuned".into());
            }
            InspectEvent::Kept(m) => {
                self.follow_before = None;
                self.model_id = m.model_id;
                self.tuning = None;
                self.status = Some("kept: fine-tuned under the mask".into());
            }
            InspectEvent::ModelReady(m) => {
                self.follow_before = None;
                self.model_id = m.model_id;
                self.model_dataset = m.info.dataset.clone();
                let alive = m.alive.iter().filter(|a| **a).count();
                self.status = Some(format!("model: {alive}/{} capsules alive", m.alive.len()));
                self.error = None;
                self.slider = None;
                self.sparsity = 0.0;
                self.backbone = m.backbone;
                if !m.backbone && self.method == PruneMethod::Backbone {
                    self.method = PruneMethod::Magnitude;
                }
            }
            InspectEvent::Exported {
                path,
                bytes,
                dense_ms,
                compact_ms,
            } => {
                self.status = Some(format!(
                    "exported {} ({:.2} MB); batch-32 inference dense {dense_ms:.1} ms, compact {compact_ms:.1} ms",
                    path.display(),
                    *bytes as f64 / 1e6
                ));
            }
            InspectEvent::KeepFailed(err) => {
                self.follow_again();
                self.tuning = None;
                self.status = None;
                self.error = Some(err.to_string());
            }
            // a failed export or load queued before a Keep leaves its progress as it is; else
            // its "loading..." or "exporting..." ends with it
            InspectEvent::Failed(err) if !err.about_the_image() => {
                if matches!(err, InspectError::Load(_)) {
                    self.follow_again();
                }
                if self.tuning.is_none() {
                    self.status = None;
                }
                self.error = Some(err.to_string());
            }
            _ => {}
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        ui.heading("Prune");
        let tuning = self.tuning.is_some();
        ui.add_enabled_ui(!tuning, |ui| {
            let mut changed = false;
            ui.horizontal(|ui| {
                ui.label("Method");
                for m in [PruneMethod::Magnitude, PruneMethod::Capsules] {
                    changed |= ui.radio_value(&mut self.method, m, m.label()).changed();
                }
            });
            if self.backbone {
                // a row of its own: the panel keeps its width
                let m = PruneMethod::Backbone;
                changed |= ui.radio_value(&mut self.method, m, m.label()).changed();
            }
            changed |= ui
                .add(egui::Slider::new(&mut self.sparsity, 0.0..=0.99).text("Sparsity"))
                .changed();
            if changed {
                self.sparsity_changed(cmds);
            }
        });
        // Every line below is always there (with "-" until known), so the buttons under them
        // never move when a result or the fine-tuning bar appears.
        ui.small(match self.method {
            PruneMethod::Capsules => "Fraction of primary capsules removed (whole types first).",
            PruneMethod::Magnitude => "Fraction of weights removed (smallest magnitude first).",
            PruneMethod::Backbone => {
                "Fraction of the backbone's FLOPs removed (same share of each layer, weakest filters first, BatchNorm re-estimated)."
            }
        });
        result_lines(ui, self.slider.as_ref());
        self.keep_controls(ui, tuning, cmds);
        ui.separator();
        self.file_controls(ui, cmds);
    }

    /// Keep and Reset, and the fine-tuning progress with Cancel (or the space it takes).
    fn keep_controls(&mut self, ui: &mut Ui, tuning: bool, cmds: &mut dyn Commands) {
        ui.horizontal(|ui| {
            let can_keep = !tuning && self.slider.as_ref().is_some_and(|r| r.sparsity > 0.0);
            if ui
                .add_enabled(can_keep, egui::Button::new("Keep"))
                .on_hover_text("Make this pruning permanent and fine-tune one epoch under its mask")
                .clicked()
            {
                self.keep(cmds);
            }
            // the slider goes back to 0 only once the worker has the Reset (a busy queue
            // refuses it, and the pruning on screen stays)
            if ui.add_enabled(!tuning, egui::Button::new("Reset")).clicked()
                && self.send(InspectCommand::Reset, cmds)
            {
                self.sparsity = 0.0;
            }
        });
        match self.tuning {
            Some((done, total)) => {
                ui.horizontal(|ui| {
                    if ui
                        .button("Cancel")
                        .on_hover_text("Stop fine-tuning; the pruning stays as it was")
                        .clicked()
                    {
                        cmds.cancel_keep();
                    }
                    ui.add(
                        egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                            .text(format!("fine-tuning step {done}/{total}")),
                    );
                });
            }
            None => {
                let height = ui.spacing().interact_size.y;
                ui.allocate_space(egui::vec2(ui.available_width(), height));
            }
        }
    }

    /// The model file field, Export / Load / Choose, the built-in models, the status and
    /// the error line.
    fn file_controls(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        if let Some(((), Some(p))) = dialogs::answer(&mut self.dialog) {
            self.model_path = p.display().to_string();
        }
        ui.horizontal(|ui| {
            let l = ui.label("File");
            ui.text_edit_singleline(&mut self.model_path).labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            // during a Keep the model on screen is about to be replaced by the kept one
            if ui
                .add_enabled(self.tuning.is_none(), egui::Button::new("Export compact"))
                .clicked()
            {
                self.export(cmds);
            }
            if ui.button("Load model").clicked() {
                self.load_model(cmds);
            }
            if ui.button("Choose file...").clicked() {
                let dialog = rfd::AsyncFileDialog::new()
                    .add_filter("model", &["safetensors"])
                    .pick_file();
                if let Err(e) = dialogs::open(&mut self.dialog, (), ui.ctx(), dialog) {
                    self.error = Some(e);
                }
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Built in:");
            for (i, (name, _)) in BUILTIN_MODELS.iter().enumerate() {
                if ui.button(*name).clicked() {
                    self.load_builtin(i, cmds);
                }
            }
        });
        ui.label(self.status.as_deref().unwrap_or(""));
        if let Some(epoch) = self.run_checkpoint.as_ref().map(|c| c.1)
            && !self.follow_run
        {
            ui.horizontal_wrapped(|ui| {
                ui.small(format!(
                    "The run's checkpoints (epoch {epoch}) wait while you work on this model."
                ));
                if ui.button("Follow the run").clicked() {
                    self.follow_run(cmds);
                }
            });
        }
        error_line(ui, self.error.as_deref());
    }
}

/// The slider's result: sparsity, held-out accuracy, alive capsules and time, one line each.
fn result_lines(ui: &mut Ui, r: Option<&SliderResult>) {
    let dash = || "-".to_string();
    ui.label(format!("Sparsity: {:.3}", r.map_or(0.0, |r| r.sparsity)));
    let acc = r.and_then(|r| Some((r.accuracy?, r.evaluated, r.held_out)));
    let acc = acc.map_or_else(dash, |(a, n, all)| {
        // a move's first answer is on the first images; the rest refine it moments later
        let part = if n < all {
            format!(" (first {n} of {all} images)")
        } else {
            String::new()
        };
        format!("{a:.3}{part}")
    });
    ui.label(format!("Held-out accuracy: {acc}"));
    let alive = r.map_or_else(dash, |r| format!("{}, types {}", r.alive_capsules, r.alive_types));
    ui.label(format!("Alive capsules: {alive}"));
    let ms = r.map_or_else(dash, |r| format!("{:.0}", r.elapsed_ms));
    ui.small(format!("pruned and evaluated in {ms} ms"));
}
