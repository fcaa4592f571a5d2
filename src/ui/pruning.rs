//! Pruning panel: the live sparsity slider with its accuracy on held-out digits, and
//! export / load of model files.

use egui::Ui;

use crate::app::AppState;

/// Draws the pruning panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Prune");
    let resp = ui.add(egui::Slider::new(&mut s.sparsity, 0.0..=0.99).text("Sparsity"));
    if resp.changed() {
        s.sparsity_changed();
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
    if ui.button("Reset").clicked() {
        s.sparsity = 0.0;
        s.sparsity_changed();
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
    if let Some(m) = &s.io_status {
        ui.label(m);
    }
}
