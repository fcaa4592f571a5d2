//! Curves panel: loss, accuracy, sparsity and alive capsules during training, and accuracy
//! against sparsity from slider moves.

use egui::Ui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::app::AppState;

/// Draws the curves panel.
pub fn show(ui: &mut Ui, s: &AppState) {
    ui.heading("Curves");
    let h = s.training.history.as_slice();
    let half = (ui.available_height() / 2.0 - 20.0).max(80.0);
    Plot::new("training-curves")
        .legend(Legend::default())
        .height(half)
        .x_axis_label("step")
        .show(ui, |plot| {
            let loss: PlotPoints = h.iter().map(|p| [p.step as f64, p.loss]).collect();
            plot.line(Line::new("train loss", loss));
            let acc: PlotPoints = h.iter().map(|p| [p.step as f64, p.accuracy]).collect();
            plot.line(Line::new("train accuracy", acc));
            let e = &s.training.epochs;
            let test: PlotPoints = e.iter().map(|m| [m.1 as f64, m.0.test_accuracy]).collect();
            plot.points(Points::new("test accuracy", test).radius(4.0));
            let sp: PlotPoints = e.iter().map(|m| [m.1 as f64, m.0.sparsity]).collect();
            plot.line(Line::new("sparsity", sp));
            let k: PlotPoints = e
                .iter()
                .map(|m| [m.1 as f64, m.0.alive_capsules as f64 / m.0.capsules.max(1) as f64])
                .collect();
            plot.line(Line::new("alive capsules K/N", k));
        });
    Plot::new("accuracy-vs-sparsity")
        .legend(Legend::default())
        .height(half)
        .x_axis_label("sparsity")
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            let mut pts: Vec<[f64; 2]> = s.slider_history.iter().map(|(sp, acc)| [*sp, *acc]).collect();
            pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
            plot.points(Points::new("held-out accuracy", PlotPoints::from(pts)).radius(3.0));
        });
}
