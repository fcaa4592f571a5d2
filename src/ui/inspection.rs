//! Inspection panel for the current digit: class-capsule lengths, the capsules coupled most
//! to the winner with their receptive fields on the input, the routing coefficients of each
//! iteration (by capsule type, drilling down to single capsules; see [`super::routing`]),
//! and the reconstruction with a slider for each dimension of the winning class capsule.

use egui::{Color32, Rect, Stroke, Ui, vec2};
use egui_plot::{Bar, BarChart, Plot};

use super::canvas::show_image;
use super::commands::{AppEvent, Commands};
use super::routing::RoutingState;
use crate::inspect::{DigitInspection, InspectCommand, InspectEvent, ModelSummary};

/// Top capsules drawn as receptive fields, and their colours (strongest first).
const FIELD_COLORS: [Color32; 5] = [
    Color32::from_rgb(255, 80, 80),
    Color32::from_rgb(255, 170, 40),
    Color32::from_rgb(240, 240, 60),
    Color32::from_rgb(80, 220, 120),
    Color32::from_rgb(90, 170, 255),
];

/// The inspection panel's state.
#[derive(Debug)]
pub struct InspectionPanel {
    /// The last inspection.
    pub inspection: Option<DigitInspection>,
    /// The last perturbed reconstruction.
    pub reconstruction: Option<Vec<f32>>,
    /// Offsets of the winning capsule's dimensions (zero for a new image or model).
    pub perturb: Vec<f32>,
    /// The routing view.
    pub routing: RoutingState,
    /// The model in use (receptive fields, class names, capsule grid).
    pub model: Option<ModelSummary>,
    /// A perturbation the worker could not take.
    pub error: Option<String>,
    /// Counts inspections, so views built from one can be cached.
    inspection_id: u64,
}

impl Default for InspectionPanel {
    fn default() -> Self {
        Self {
            inspection: None,
            reconstruction: None,
            perturb: vec![0.0; 16],
            routing: RoutingState::default(),
            model: None,
            error: None,
            inspection_id: 0,
        }
    }
}

impl InspectionPanel {
    /// Follows the inspection worker's events.
    pub fn on_event(&mut self, e: &AppEvent) {
        let AppEvent::Inspect(e) = e else { return };
        match e {
            InspectEvent::Inspected(r) => {
                // a new image starts from its own reconstruction, with no offsets
                self.reconstruction = None;
                self.perturb.fill(0.0);
                self.inspection_id += 1;
                self.inspection = Some((**r).clone());
            }
            InspectEvent::Reconstruction(img) => self.reconstruction = Some(img.clone()),
            InspectEvent::Forgotten => {
                self.inspection = None;
                self.reconstruction = None;
            }
            InspectEvent::ModelReady(m) | InspectEvent::Kept(m) => {
                self.perturb = vec![0.0; m.class_dim];
                self.model = Some((**m).clone());
            }
            _ => {}
        }
    }

    /// The input shape of the model, (channels, height, width); MNIST's without one.
    fn input_shape(&self) -> (usize, usize, usize) {
        ModelSummary::input_of(self.model.as_ref())
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        ui.heading("Prediction");
        // taken out for the frame (not cloned) and put back below
        let Some(r) = self.inspection.take() else {
            ui.label("Draw a digit or pick a random test digit.");
            return;
        };
        self.show_inspection(ui, &r, cmds);
        self.inspection = Some(r);
    }

    fn show_inspection(&mut self, ui: &mut Ui, r: &DigitInspection, cmds: &mut dyn Commands) {
        let class = self
            .model
            .as_ref()
            .map_or(r.prediction.to_string(), |m| m.class_name(r.prediction));
        let length = r.lengths.get(r.prediction).copied().unwrap_or(0.0);
        let text = format!("Prediction: {class} ({length:.2})");
        ui.label(egui::RichText::new(text).size(20.0));
        lengths_chart(ui, &r.lengths);
        let shape = self.input_shape();
        let scale = 3.0 * 28.0 / shape.1.max(1) as f32;
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.label("Reconstruction");
                let img = self
                    .reconstruction
                    .as_ref()
                    .or(r.reconstruction.as_ref())
                    .map_or(&[][..], |v| v.as_slice());
                show_image(ui, img, shape, scale);
            });
            ui.vertical(|ui| {
                ui.label("Top capsules on the input");
                receptive_fields(ui, self.model.as_ref(), r, (shape, scale));
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
        let title = format!("Winning capsule's {} dimensions", self.perturb.len());
        ui.collapsing(title, |ui| {
            let mut changed = false;
            for (e, d) in self.perturb.iter_mut().enumerate() {
                changed |= ui
                    .add(egui::Slider::new(d, -0.25..=0.25).text(format!("dim {e}")))
                    .changed();
            }
            if changed {
                let c = InspectCommand::Perturb(self.perturb.clone());
                self.error = cmds.inspect(c).err().map(|e| e.to_string());
            }
            super::training::error_line(ui, self.error.as_deref());
        });
        let cells = self.model.as_ref().map_or(0, |m| m.grid_h * m.grid_w);
        super::routing::show(ui, &mut self.routing, r, (self.inspection_id, cells));
    }
}

/// The class-capsule lengths as bars.
fn lengths_chart(ui: &mut Ui, lengths: &[f32]) {
    let bars: Vec<Bar> = lengths
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
}

/// The input the network saw, with the receptive fields of the capsules coupled most to the
/// winner drawn on it.
fn receptive_fields(
    ui: &mut Ui,
    model: Option<&ModelSummary>,
    r: &DigitInspection,
    (shape, scale): ((usize, usize, usize), f32),
) {
    let rect = show_image(ui, &r.input, shape, scale);
    let Some(m) = model else { return };
    let painter = ui.painter_at(rect);
    for (v, color) in r.top_capsules.iter().zip(FIELD_COLORS).rev() {
        // the painter clips fields that start before the image (a backbone's padding)
        let at = |i: usize| (i * m.field_stride) as f32 - m.field_offset as f32;
        let min = rect.min + vec2(at(v.x), at(v.y)) * scale;
        let side = m.receptive_field as f32 * scale;
        painter.rect_stroke(
            Rect::from_min_size(min, vec2(side, side)),
            0.0,
            Stroke::new(1.5, color),
            egui::StrokeKind::Inside,
        );
    }
}
