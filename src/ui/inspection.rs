//! Inspection panel for the current digit: class-capsule lengths, the capsules coupled most
//! to the winner with their receptive fields on the input, the routing coefficients of each
//! iteration (by capsule type, drilling down to single capsules; see [`super::routing`]),
//! and the reconstruction with 16 dimension sliders.

use egui::{Color32, Rect, Stroke, Ui, vec2};
use egui_plot::{Bar, BarChart, Plot};

use super::canvas::show_image;
use crate::app::AppState;
use crate::inspect::DigitInspection;

/// Top capsules drawn as receptive fields, and their colours (strongest first).
const FIELD_COLORS: [Color32; 5] = [
    Color32::from_rgb(255, 80, 80),
    Color32::from_rgb(255, 170, 40),
    Color32::from_rgb(240, 240, 60),
    Color32::from_rgb(80, 220, 120),
    Color32::from_rgb(90, 170, 255),
];

/// Draws the inspection panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Prediction");
    // taken out for the frame (not cloned) and put back below
    let Some(r) = s.inspection.take() else {
        ui.label("Draw a digit or pick a random test digit.");
        return;
    };
    show_inspection(ui, s, &r);
    if s.inspection.is_none() {
        s.inspection = Some(r);
    }
}

fn show_inspection(ui: &mut Ui, s: &mut AppState, r: &DigitInspection) {
    ui.label(
        egui::RichText::new(format!(
            "Prediction: {} ({:.2})",
            s.model
                .as_ref()
                .map_or(r.prediction.to_string(), |m| m.class_name(r.prediction)),
            r.lengths[r.prediction]
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
                .or_else(|| r.reconstruction.clone())
                .unwrap_or_default();
            show_image(
                ui,
                &img,
                s.input_shape(),
                3.0 * 28.0 / s.input_shape().1.max(1) as f32,
            );
        });
        ui.vertical(|ui| {
            ui.label("Top capsules on the input");
            receptive_fields(ui, s, r);
        });
    });
    for (v, color) in r.top_capsules.iter().zip(FIELD_COLORS) {
        ui.colored_label(
            color,
            format!(
                "#{} type {} ({},{}): coupling {:.3}, length {:.3}",
                v.capsule, v.capsule_type, v.y, v.x, v.coupling, v.activation
            ),
        );
    }
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
    super::routing::show(ui, s, r);
}

/// The input the network saw, with the receptive fields of the capsules coupled most to the
/// winner drawn on it.
fn receptive_fields(ui: &mut Ui, s: &AppState, r: &DigitInspection) {
    let scale = 3.0;
    let shape = s.input_shape();
    let scale = scale * 28.0 / shape.1.max(1) as f32;
    let rect = show_image(ui, &s.canvas.input, shape, scale);
    let Some(m) = &s.model else { return };
    let painter = ui.painter_at(rect);
    for (v, color) in r.top_capsules.iter().zip(FIELD_COLORS).rev() {
        let min = rect.min + vec2((v.x * m.field_stride) as f32, (v.y * m.field_stride) as f32) * scale;
        let side = m.receptive_field as f32 * scale;
        painter.rect_stroke(
            Rect::from_min_size(min, vec2(side, side)),
            0.0,
            Stroke::new(1.5, color),
            egui::StrokeKind::Inside,
        );
    }
}
