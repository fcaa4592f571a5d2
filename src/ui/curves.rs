//! Curves panel: loss and accuracy during training; global and per-layer sparsity (conv1,
//! primary, class capsules) and alive capsules per epoch; accuracy against sparsity from
//! slider moves, beside the sweeps of the shipped MNIST model. Legends sit above the charts,
//! and a chart with nothing to show yet is a framed hint, not bare axes.

use egui::{Color32, Ui};
use egui_plot::{Line, Plot, PlotPoints, Points};

use super::commands::AppEvent;
use crate::inspect::{InspectEvent, PruneMethod};
use crate::train::{EpochMetrics, Event};

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

/// The curves panel's data.
#[derive(Debug, Default)]
pub struct CurvesPanel {
    /// Progress reports of the current run.
    pub history: Vec<StepPoint>,
    /// Finished epochs and the step at which each ended.
    pub epochs: Vec<(EpochMetrics, usize)>,
    /// (sparsity, accuracy) of the slider's results on the model in use with the slider's
    /// method, one per sparsity (the newest); a new model or method starts it again.
    pub slider_history: Vec<(f64, f64)>,
    /// The method of the points in `slider_history`.
    pub slider_method: Option<PruneMethod>,
}

impl CurvesPanel {
    /// Follows both workers' events.
    pub fn on_event(&mut self, e: &AppEvent) {
        match e {
            AppEvent::Train(Event::Started { .. }) => {
                self.history.clear();
                self.epochs.clear();
            }
            AppEvent::Train(Event::Step(s)) => self.history.push(StepPoint {
                step: s.global_step,
                loss: s.loss,
                accuracy: s.accuracy,
            }),
            AppEvent::Train(Event::Epoch(m)) => {
                let step = self.history.last().map_or(0, |p| p.step);
                self.epochs.push((m.clone(), step));
            }
            // a resumed run's earlier epochs: their sparsity, K/N and test accuracy
            AppEvent::Train(Event::EarlierEpochs {
                epochs,
                steps_per_epoch,
            }) => {
                let at_end = |m: &EpochMetrics| m.epoch.saturating_mul(*steps_per_epoch);
                self.epochs = epochs.iter().map(|m| (m.clone(), at_end(m))).collect();
            }
            AppEvent::Inspect(InspectEvent::ModelReady(_) | InspectEvent::Kept(_)) => {
                self.slider_history.clear();
            }
            // only answers on all the held-out images, not a move's first estimate
            AppEvent::Inspect(InspectEvent::Pruned(r)) if r.evaluated == r.held_out => {
                if self.slider_method != Some(r.method) {
                    self.slider_history.clear();
                    self.slider_method = Some(r.method);
                }
                if let Some(a) = r.accuracy {
                    self.slider_history.retain(|(sp, _)| *sp != r.sparsity);
                    self.slider_history.push((r.sparsity, a));
                }
            }
            _ => {}
        }
    }

    /// Draws the panel.
    pub fn ui(&self, ui: &mut Ui) {
        show(ui, self);
    }
}

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

/// (name, points) of each shipped sweep.
type Sweeps = Vec<(&'static str, Vec<[f64; 2]>)>;
/// The shipped sweeps, parsed once.
static SWEEP_POINTS: std::sync::LazyLock<Sweeps> = std::sync::LazyLock::new(|| {
    MNIST_SWEEPS
        .iter()
        .map(|(name, csv)| (*name, sweep_points(csv)))
        .collect()
});

/// Series colours, in the order each chart lists its series.
const COLOURS: [Color32; 5] = [
    Color32::from_rgb(66, 133, 244),
    Color32::from_rgb(219, 68, 55),
    Color32::from_rgb(244, 180, 0),
    Color32::from_rgb(15, 157, 88),
    Color32::from_rgb(171, 71, 188),
];

/// A legend as a row of names in their series' colours above a chart, so it never covers
/// the data.
fn legend(ui: &mut Ui, names: &[&str]) {
    ui.horizontal_wrapped(|ui| {
        for (name, colour) in names.iter().zip(COLOURS) {
            // each name in its series' colour, never broken across lines
            let text = egui::RichText::new(*name).color(colour).strong();
            ui.add(egui::Label::new(text).wrap_mode(egui::TextWrapMode::Extend));
        }
    });
}

/// A frame of `height` with a hint in place of a chart that has nothing to show yet.
fn placeholder(ui: &mut Ui, height: f32, text: &str) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        let size = egui::vec2(ui.available_width(), (height - 14.0).max(20.0));
        let layout = egui::Layout::centered_and_justified(egui::Direction::TopDown);
        ui.allocate_ui_with_layout(size, layout, |ui| ui.weak(text));
    });
}

fn line(name: &str, i: usize, pts: Vec<[f64; 2]>) -> Line<'static> {
    Line::new(name, PlotPoints::from(pts)).color(COLOURS[i])
}

/// Draws the curves panel: training loss and accuracy, sparsity by layer, and accuracy
/// against sparsity.
fn show(ui: &mut Ui, s: &CurvesPanel) {
    ui.heading("Curves");
    // the training curves on top, sparsity and the slider's accuracy side by side below
    let half = (ui.available_height() / 2.0 - 40.0).max(80.0);
    training_chart(ui, s, half);
    ui.columns(2, |cols| {
        sparsity_chart(&mut cols[0], s, half);
        slider_chart(&mut cols[1], s, half);
    });
}

fn training_chart(ui: &mut Ui, s: &CurvesPanel, height: f32) {
    let h = s.history.as_slice();
    let e = &s.epochs;
    legend(ui, &["train loss", "train accuracy", "test accuracy"]);
    if h.is_empty() && e.is_empty() {
        placeholder(ui, height, "No training yet: press Start");
        return;
    }
    Plot::new("training-curves")
        .height(height)
        .x_axis_label("step")
        .show(ui, |plot| {
            plot.line(line(
                "train loss",
                0,
                h.iter().map(|p| [p.step as f64, p.loss]).collect(),
            ));
            plot.line(line(
                "train accuracy",
                1,
                h.iter().map(|p| [p.step as f64, p.accuracy]).collect(),
            ));
            let test: PlotPoints = e.iter().map(|m| [m.1 as f64, m.0.test_accuracy]).collect();
            plot.points(Points::new("test accuracy", test).radius(4.0).color(COLOURS[2]));
        });
}

fn sparsity_chart(ui: &mut Ui, s: &CurvesPanel, height: f32) {
    let e = &s.epochs;
    legend(
        ui,
        &[
            "sparsity",
            "conv1",
            "primary",
            "class capsules",
            "alive capsules K/N",
        ],
    );
    if e.is_empty() {
        placeholder(ui, height, "Sparsity by layer appears after the first epoch");
        return;
    }
    Plot::new("sparsity-curves")
        .height(height)
        .x_axis_label("step")
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            let at = |f: &dyn Fn(&EpochMetrics) -> f64| -> Vec<[f64; 2]> {
                e.iter().map(|(m, step)| [*step as f64, f(m)]).collect()
            };
            // one value per epoch: lines with a marker at each, so one epoch shows too
            let mut series = |name: &str, i: usize, pts: Vec<[f64; 2]>| {
                plot.points(
                    Points::new(name, PlotPoints::from(pts.clone()))
                        .radius(3.0)
                        .color(COLOURS[i]),
                );
                plot.line(line(name, i, pts));
            };
            series("sparsity", 0, at(&|m| m.sparsity));
            for (i, name) in ["conv1", "primary", "class capsules"].into_iter().enumerate() {
                series(name, i + 1, at(&|m| m.layer_sparsity[i]));
            }
            series(
                "alive capsules K/N",
                4,
                at(&|m| m.alive_capsules as f64 / m.capsules.max(1) as f64),
            );
        });
}

fn slider_chart(ui: &mut Ui, s: &CurvesPanel, height: f32) {
    legend(
        ui,
        &[
            "held-out accuracy",
            "MNIST sweep: magnitude",
            "MNIST sweep: capsules",
        ],
    );
    Plot::new("accuracy-vs-sparsity")
        .height(height)
        .x_axis_label("sparsity")
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            let mut pts: Vec<[f64; 2]> = s.slider_history.iter().map(|(sp, acc)| [*sp, *acc]).collect();
            pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
            plot.points(
                Points::new("held-out accuracy", PlotPoints::from(pts))
                    .radius(3.0)
                    .color(COLOURS[0]),
            );
            for (i, (name, pts)) in SWEEP_POINTS.iter().enumerate() {
                plot.line(line(name, i + 1, pts.clone()));
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
