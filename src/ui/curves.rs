//! Curves panel: loss, accuracy, sparsity and alive capsules during training, and accuracy
//! against sparsity from slider moves, beside the sweeps of the shipped MNIST model.

use egui::Ui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::app::AppState;

/// `sweep.csv` of the shipped MNIST model (`results/`, made by `scripts/reproduce.sh`).
const MNIST_SWEEPS: [(&str, &str); 2] = [
    (
        "MNIST sweep: magnitude",
        include_str!("../../results/mnist-sweep-magnitude/sweep.csv"),
    ),
    (
        "MNIST sweep: capsules",
        include_str!("../../results/mnist-sweep-capsules/sweep.csv"),
    ),
];

/// (weight sparsity, accuracy) of each row of a `sweep.csv`; rows it cannot read are left out.
pub fn sweep_points(csv: &str) -> Vec<[f64; 2]> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(x), Some(y)) = (col("weight_sparsity"), col("accuracy")) else {
        return Vec::new();
    };
    let mut pts: Vec<[f64; 2]> = lines
        .filter_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            Some([cells.get(x)?.parse().ok()?, cells.get(y)?.parse().ok()?])
        })
        .collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    pts
}

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
            for (name, csv) in MNIST_SWEEPS {
                plot.line(Line::new(name, PlotPoints::from(sweep_points(csv))));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sweeps_parse() {
        for (name, csv) in MNIST_SWEEPS {
            let pts = sweep_points(csv);
            assert_eq!(pts.len(), 5, "{name}");
            assert!(
                pts.iter()
                    .all(|p| (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1]))
            );
        }
        assert!(sweep_points("a,b\n1,2\n").is_empty(), "no such columns");
    }
}
