//! Inspection panel for the current digit: class-capsule lengths, the capsules coupled most
//! to the winner with their receptive fields on the input, the routing coefficients of each
//! iteration as a heatmap, and the reconstruction with 16 dimension sliders.

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
            ui.label("Top capsules on the input");
            receptive_fields(ui, s, &r);
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
    routing(ui, s, &r);
}

/// The input the network saw, with the receptive fields of the capsules coupled most to the
/// winner drawn on it.
fn receptive_fields(ui: &mut Ui, s: &AppState, r: &DigitInspection) {
    let scale = 3.0;
    let rect = show_image(ui, &s.canvas.input, 28, scale);
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

/// Routing coefficients c[i, j] of one iteration as a classes x capsules heatmap.
fn routing(ui: &mut Ui, s: &mut AppState, r: &DigitInspection) {
    let iters = r.coupling.len();
    let k = r.capsules.max(1);
    if iters == 0 {
        return;
    }
    s.routing_iter = s.routing_iter.min(iters - 1);
    ui.horizontal(|ui| {
        ui.label("Routing, iteration");
        for i in 0..iters {
            ui.selectable_value(&mut s.routing_iter, i, format!("{}", i + 1));
        }
    });
    let key = (s.inspection_id, s.routing_iter);
    let texture = match &s.routing_texture {
        Some((cached, t)) if *cached == key => t.clone(),
        _ => {
            let c = &r.coupling[s.routing_iter];
            let classes = c.len() / k;
            // colour is the departure from uniform routing (1/J), on one scale for every
            // iteration of this digit so that they compare
            let uniform = 1.0 / classes.max(1) as f32;
            let top = r.coupling.iter().flatten().fold(uniform + 1e-6, |a, b| a.max(*b));
            let pixels = c
                .iter()
                .map(|&v| {
                    // square root: small departures stay visible
                    if v >= uniform {
                        heat(((v - uniform) / (top - uniform)).sqrt())
                    } else {
                        cold(((uniform - v) / uniform).sqrt())
                    }
                })
                .collect();
            let image = egui::ColorImage::new([k, classes], pixels);
            let t = ui
                .ctx()
                .load_texture("routing", image, egui::TextureOptions::LINEAR);
            s.routing_texture = Some((key, t.clone()));
            t
        }
    };
    let [_, classes] = texture.size();
    let width = ui.available_width().min(320.0);
    ui.add(egui::Image::new((
        texture.id(),
        vec2(width, 12.0 * classes as f32),
    )))
    .on_hover_text("rows: classes 0 (top) to 9; columns: the routed capsules, type by type");
    ui.small(format!(
        "{k} capsules x {classes} classes. Black: uniform coupling (1/{classes}, all of \
         iteration 1); red to yellow: stronger, blue: weaker."
    ));
}

/// Black -> blue colour scale for `v` in [0, 1].
fn cold(v: f32) -> Color32 {
    let v = v.clamp(0.0, 1.0);
    Color32::from_rgb(0, (90.0 * v) as u8, (255.0 * v) as u8)
}

/// Black -> red -> yellow -> white colour scale for `v` in [0, 1].
fn heat(v: f32) -> Color32 {
    let v = v.clamp(0.0, 1.0);
    let ch = |x: f32| (x.clamp(0.0, 1.0) * 255.0) as u8;
    Color32::from_rgb(ch(3.0 * v), ch(3.0 * v - 1.0), ch(3.0 * v - 2.0))
}
