//! Pruning panel: the live sparsity slider (weights by magnitude, or whole capsules) with
//! its accuracy on held-out digits, Keep / Reset, and export / load of model files.

use egui::Ui;

use crate::app::AppState;
use crate::inspect::SliderMethod;

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
    if s.slider_method == SliderMethod::Capsules {
        ui.small("The slider is the fraction of primary capsules removed (whole types first).");
    }
    match &s.slider {
        Some(r) => {
            ui.label(format!("Sparsity: {:.3}", r.sparsity));
            if let Some(a) = r.accuracy {
                ui.label(format!("Held-out accuracy: {:.3}", a));
            }
            ui.label(format!(
                "Alive capsules: {}, types {}",
                r.alive_capsules, r.alive_types
            ));
            ui.small(format!("pruned and evaluated in {:.0} ms", r.elapsed_ms));
        }
        None => {
            ui.label("Sparsity: 0.000");
        }
    }
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
    if let Some((done, total)) = s.tuning {
        ui.add(
            egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                .text(format!("fine-tuning step {done}/{total}")),
        );
    }
    ui.separator();
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
