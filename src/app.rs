//! The desktop app (eframe). This first version shows what the build can do and how to
//! use the CLI; the panels come with the app issue.

use eframe::egui;

/// The app's state.
#[derive(Default)]
pub struct SparsecapsApp;

impl eframe::App for SparsecapsApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("sparsecaps");
            ui.label("The desktop panels are not built yet. Everything runs from the CLI:");
            ui.monospace("sparsecaps train --preset small --epochs 1 --out RUN");
            ui.monospace("sparsecaps eval --model RUN/model.safetensors --json");
            ui.monospace("sparsecaps bench --preset paper --json");
        });
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
    eframe::run_native("sparsecaps", options, Box::new(|_cc| Ok(Box::new(SparsecapsApp))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
