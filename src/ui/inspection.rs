//! Inspection panel for the current digit: class-capsule lengths, the capsules coupled most
//! to the winner, routing per iteration, and the reconstruction with 16 dimension sliders.

use egui::Ui;
use egui_plot::{Bar, BarChart, Plot};

use super::canvas::show_image;
use crate::app::AppState;

/// Draws the inspection panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Prediction");
    let Some(r) = s.inspection.clone() else {
        ui.label("Draw a digit or pick a random test digit.");
        return;
    };
    ui.label(
        egui::RichText::new(format!(
            "Prediction: {} ({:.2})",
            r.prediction, r.lengths[r.prediction]
        ))
        .size(20.0),
    );
    let bars: Vec<Bar> = r
        .lengths
        .iter()
        .enumerate()
        .map(|(j, l)| Bar::new(j as f64, *l as f64))
        .collect();
    Plot::new("lengths")
        .height(110.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_zoom(false)
        .allow_drag(false)
        .show(ui, |p| p.bar_chart(BarChart::new("class-capsule length", bars)));
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label("Reconstruction");
            let img = s
                .reconstruction
                .clone()
                .or(r.reconstruction.clone())
                .unwrap_or_default();
            show_image(ui, &img, 28, 3.0);
        });
        ui.vertical(|ui| {
            ui.label("Top capsules (coupling to the winner)");
            for v in r.top_capsules.iter().take(6) {
                ui.small(format!(
                    "#{} type {} ({},{}) c={:.3}",
                    v.capsule, v.capsule_type, v.y, v.x, v.coupling
                ));
            }
        });
    });
    ui.collapsing("Winning capsule's 16 dimensions", |ui| {
        let mut changed = false;
        for (e, d) in s.perturb.iter_mut().enumerate() {
            changed |= ui
                .add(egui::Slider::new(d, -0.25..=0.25).text(format!("dim {e}")))
                .changed();
        }
        if changed {
            s.send_perturbation();
        }
    });
    if let Some(last) = r.coupling.last() {
        ui.collapsing("Routing (last iteration)", |ui| {
            let k = r.capsules.max(1);
            let classes = last.len() / k;
            ui.small(format!(
                "{k} capsules x {classes} classes; mean coupling per class:"
            ));
            let means: Vec<String> = (0..classes)
                .map(|j| {
                    format!(
                        "{j}: {:.3}",
                        last[j * k..(j + 1) * k].iter().sum::<f32>() / k as f32
                    )
                })
                .collect();
            ui.small(means.join("  "));
        });
    }
}
