//! Training panel: dataset, preset, epochs, batch, learning rate, pruning, device, the
//! run buttons and progress.

use egui::Ui;

use crate::app::{AppState, TrainChoice};
use crate::device::DeviceChoice;
use crate::model::Preset;

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

/// Draws the training panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Training");
    let running = s.training.running;
    ui.add_enabled_ui(!running, |ui| {
        egui::Grid::new("train-grid").num_columns(2).show(ui, |ui| {
            dataset_row(ui, s);
            basic_rows(ui, s);
            pruning_rows(ui, s);
            row(ui, "Device", |ui| {
                egui::ComboBox::from_id_salt("device")
                    .selected_text(format!("{:?}", s.train.device).to_lowercase())
                    .show_ui(ui, |ui| {
                        for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
                            ui.selectable_value(&mut s.train.device, d, format!("{d:?}").to_lowercase());
                        }
                    })
                    .response
            });
        });
    });
    run_controls(ui, s, running);
}

/// The dataset: a choice of the built-in ones, or a folder.
fn dataset_row(ui: &mut Ui, s: &mut AppState) {
    ui.label("Dataset");
    ui.horizontal(|ui| {
            let shown = match s.train.data.as_str() {
                "mnist" => "MNIST".to_string(),
                "fashion-mnist" => "Fashion-MNIST".to_string(),
                "cifar10" => "CIFAR-10".to_string(),
                path => std::path::Path::new(path)
                    .file_name()
                    .map_or(path.to_string(), |n| n.to_string_lossy().into_owned()),
            };
            let combo = egui::ComboBox::from_id_salt("dataset")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.train.data, "mnist".into(), "MNIST");
                    ui.selectable_value(&mut s.train.data, "fashion-mnist".into(), "Fashion-MNIST");
                    ui.selectable_value(&mut s.train.data, "cifar10".into(), "CIFAR-10")
                        .on_hover_text(format!(
                            "${} or ~/{}",
                            crate::data::dataset::CIFAR10_ENV,
                            crate::data::dataset::CIFAR10_DIRS[0]
                        ));
                })
                .response;
            name(&combo, "Dataset");
            combo.on_hover_text(&s.train.data);
            if ui
                .button("Folder...")
                .on_hover_text(
                    "A folder with the four IDX files (gzipped or not), train/ and test/ class folders of PNG or JPEG images, or CIFAR-10's binary batches",
                )
                .clicked()
                && let Some(dir) = rfd::FileDialog::new().pick_folder()
            {
                s.choose_dataset_folder(&dir);
            }
        });
    ui.end_row();
}

/// Preset, epochs, batch, learning rate and the training-image limit.
fn basic_rows(ui: &mut Ui, s: &mut AppState) {
    row(ui, "Preset", |ui| {
        egui::ComboBox::from_id_salt("preset")
            .selected_text(s.train.preset.name())
            .show_ui(ui, |ui| {
                for p in Preset::ALL {
                    ui.selectable_value(&mut s.train.preset, p, p.name());
                }
            })
            .response
    });
    row(ui, "Epochs", |ui| {
        ui.add(egui::DragValue::new(&mut s.train.epochs).range(1..=500))
    });
    row(ui, "Batch", |ui| {
        ui.add(egui::DragValue::new(&mut s.train.batch).range(1..=1024))
    });
    row(ui, "Learning rate", |ui| {
        ui.add(
            egui::DragValue::new(&mut s.train.lr)
                .speed(1e-4)
                .range(1e-6..=1.0),
        )
    });
    row(ui, "Limit train images", |ui| {
        ui.add(egui::DragValue::new(&mut s.train.limit_train).range(0..=60_000))
    });
}

/// The pruning schedule and its settings.
fn pruning_rows(ui: &mut Ui, s: &mut AppState) {
    row(ui, "Pruning", |ui| {
        egui::ComboBox::from_id_salt("prune")
            .selected_text(s.train.prune.label())
            .show_ui(ui, |ui| {
                for p in [TrainChoice::None, TrainChoice::Lobster, TrainChoice::Gmp] {
                    ui.selectable_value(&mut s.train.prune, p, p.label());
                }
            })
            .response
    });
    match s.train.prune {
        TrainChoice::Lobster => {
            row(ui, "LOBSTER lambda", |ui| {
                ui.add(
                    egui::DragValue::new(&mut s.train.lambda)
                        .speed(1e-5)
                        .range(0.0..=1.0),
                )
            });
            row(ui, "Patience (pwe)", |ui| {
                ui.add(egui::DragValue::new(&mut s.train.pwe).range(0..=50))
            });
            row(ui, "Tolerance (twt)", |ui| {
                ui.add(
                    egui::DragValue::new(&mut s.train.twt)
                        .speed(0.01)
                        .range(0.0..=1.0),
                )
            });
        }
        TrainChoice::Gmp => {
            row(ui, "Target sparsity", |ui| {
                ui.add(egui::Slider::new(&mut s.train.target, 0.0..=0.99))
            });
        }
        TrainChoice::None => {}
    }
}

/// Start / Pause / Resume / Stop, the device, progress, status and errors.
fn run_controls(ui: &mut Ui, s: &mut AppState, running: bool) {
    ui.horizontal(|ui| {
        if ui.add_enabled(!running, egui::Button::new("Start")).clicked() {
            s.start_training();
        }
        if ui
            .add_enabled(!running, egui::Button::new("Resume run..."))
            .on_hover_text(
                "Continue a run folder (the app's or `sparsecaps train --out DIR`'s) from its last checkpoint; Epochs, if larger, is the new total",
            )
            .clicked()
            && let Some(dir) = rfd::FileDialog::new().pick_folder()
        {
            s.resume_run(&dir);
        }
        if s.training.paused {
            if ui.add_enabled(running, egui::Button::new("Resume")).clicked() {
                s.resume_training();
            }
        } else if ui.add_enabled(running, egui::Button::new("Pause")).clicked() {
            s.pause_training();
        }
        if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
            s.stop_training();
        }
    });
    // the device line (one line, the rest on hover), the bar, the status, the frame
    // time and the error line are always there, so the panels below do not move when a run starts
    let device = s.training.device.as_deref().unwrap_or("chosen when a run starts");
    let text = egui::RichText::new(format!("Device: {device}")).small();
    ui.add(egui::Label::new(text).truncate()).on_hover_text(device);
    let t = &s.training;
    let (frac, text) = if t.total_steps > 0 {
        let eta = t.eta_s().map(|e| format!(", ETA {e:.0} s")).unwrap_or_default();
        (
            t.step as f32 / t.total_steps as f32,
            format!("step {}/{}{eta}", t.step, t.total_steps),
        )
    } else {
        (0.0, "no run yet".to_string())
    };
    ui.add(egui::ProgressBar::new(frac).text(text));
    ui.label(&s.training.status);
    ui.small(format!("UI frame: {:.1} ms", s.frame_ms));
    // the error has a line of its own even when there is none, and a long one is cut to
    // that line (all of it on hover), so the panels below never move
    let error = s.error.as_deref().unwrap_or("");
    let text = egui::RichText::new(error).color(egui::Color32::LIGHT_RED);
    ui.add(egui::Label::new(text).truncate()).on_hover_text(error);
}
