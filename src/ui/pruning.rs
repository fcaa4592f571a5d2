//! Pruning panel: the live sparsity slider (weights by magnitude, or whole capsules) with
//! its accuracy on held-out digits, Keep / Reset, and export / load of model files.

use egui::Ui;

use crate::app::AppState;
use crate::inspect::SliderMethod;

/// The slider's result: sparsity, held-out accuracy, alive capsules and time, one line each.
fn result_lines(ui: &mut Ui, r: Option<&crate::inspect::SliderResult>) {
    let dash = || "-".to_string();
    ui.label(format!("Sparsity: {:.3}", r.map_or(0.0, |r| r.sparsity)));
    let acc = r
        .and_then(|r| r.accuracy)
        .map_or_else(dash, |a| format!("{a:.3}"));
    ui.label(format!("Held-out accuracy: {acc}"));
    let alive = r.map_or_else(dash, |r| format!("{}, types {}", r.alive_capsules, r.alive_types));
    ui.label(format!("Alive capsules: {alive}"));
    let ms = r.map_or_else(dash, |r| format!("{:.0}", r.elapsed_ms));
    ui.small(format!("pruned and evaluated in {ms} ms"));
}

/// Draws the pruning panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Prune");
    let tuning = s.tuning.is_some();
    ui.add_enabled_ui(!tuning, |ui| {
        ui.horizontal(|ui| {
            ui.label("Method");
            for m in [SliderMethod::Magnitude, SliderMethod::Capsules] {
                if ui.radio_value(&mut s.slider_method, m, m.label()).changed() {
                    s.sparsity_changed();
                }
            }
        });
        let resp = ui.add(egui::Slider::new(&mut s.sparsity, 0.0..=0.99).text("Sparsity"));
        if resp.changed() {
            s.sparsity_changed();
        }
    });
    // Every line below is always there (with "-" until known), so the buttons under them
    // never move when a result or the fine-tuning bar appears.
    ui.small(match s.slider_method {
        SliderMethod::Capsules => "Fraction of primary capsules removed (whole types first).",
        SliderMethod::Magnitude => "Fraction of weights removed (smallest magnitude first).",
    });
    result_lines(ui, s.slider.as_ref());
    keep_controls(ui, s, tuning);
    ui.separator();
    file_controls(ui, s);
}

/// Keep and Reset, and the fine-tuning progress with Cancel (or the space it takes).
fn keep_controls(ui: &mut Ui, s: &mut AppState, tuning: bool) {
    ui.horizontal(|ui| {
        let can_keep = !tuning && s.slider.as_ref().is_some_and(|r| r.sparsity > 0.0);
        if ui
            .add_enabled(can_keep, egui::Button::new("Keep"))
            .on_hover_text("Make this pruning permanent and fine-tune one epoch under its mask")
            .clicked()
        {
            s.keep_pruning();
        }
        if ui.add_enabled(!tuning, egui::Button::new("Reset")).clicked() {
            s.reset_pruning();
        }
    });
    match s.tuning {
        Some((done, total)) => {
            ui.horizontal(|ui| {
                if ui
                    .button("Cancel")
                    .on_hover_text("Stop fine-tuning; the pruning stays as it was")
                    .clicked()
                {
                    s.cancel_keep();
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

/// The model file field, Export / Load / Choose, the built-in models and I/O status.
fn file_controls(ui: &mut Ui, s: &mut AppState) {
    ui.horizontal(|ui| {
        let l = ui.label("File");
        ui.text_edit_singleline(&mut s.model_path).labelled_by(l.id);
    });
    ui.horizontal(|ui| {
        if ui.button("Export compact").clicked() {
            let path = s.model_path.clone();
            s.export_to(std::path::Path::new(&path));
        }
        if ui.button("Load model").clicked() {
            let path = s.model_path.clone();
            s.load_model_from(std::path::Path::new(&path));
        }
        if ui.button("Choose file...").clicked()
            && let Some(p) = rfd::FileDialog::new()
                .add_filter("model", &["safetensors"])
                .pick_file()
        {
            s.model_path = p.display().to_string();
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Built in:");
        for (i, (name, _)) in crate::app::BUILTIN_MODELS.iter().enumerate() {
            if ui.button(*name).clicked() {
                s.load_builtin(i);
            }
        }
    });
    if let Some(m) = &s.io_status {
        ui.label(m);
    }
}
