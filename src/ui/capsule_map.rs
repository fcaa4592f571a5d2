//! Capsule map panel: every primary capsule as a cell (types in rows of grids), dead ones
//! dark, colour = activation for the current digit.

use egui::{Color32, Rect, Sense, Ui, pos2, vec2};

use super::commands::AppEvent;
use crate::inspect::{InspectEvent, ModelSummary};

/// The capsule map's state.
#[derive(Debug, Default)]
pub struct CapsuleMapPanel {
    /// The model in use.
    pub model: Option<ModelSummary>,
    /// Alive map after the last slider move (the model's own before one).
    pub alive: Option<Vec<bool>>,
    /// Activation per dense capsule index for the image inspected last.
    pub activations: Option<Vec<f32>>,
}

impl CapsuleMapPanel {
    /// Follows the inspection worker's events.
    pub fn on_event(&mut self, e: &AppEvent) {
        let AppEvent::Inspect(e) = e else { return };
        match e {
            InspectEvent::ModelReady(m) | InspectEvent::Kept(m) => {
                self.model = Some((**m).clone());
                self.alive = None;
            }
            InspectEvent::Pruned(r) => self.alive = Some(r.alive.clone()),
            InspectEvent::Inspected(r) => {
                self.activations = self.model.as_ref().map(|m| {
                    let mut act = vec![0.0; m.alive.len()];
                    for (a, i) in r.activations.iter().zip(&r.indices) {
                        if let Some(slot) = act.get_mut(*i) {
                            *slot = *a;
                        }
                    }
                    act
                });
            }
            // the map must not keep colouring an erased image
            InspectEvent::Forgotten => self.activations = None,
            _ => {}
        }
    }

    /// Draws the panel.
    pub fn ui(&self, ui: &mut Ui) {
        show(ui, self);
    }
}

/// Draws the capsule map.
fn show(ui: &mut Ui, s: &CapsuleMapPanel) {
    ui.heading("Primary capsules");
    let Some(m) = &s.model else {
        ui.label("No model loaded.");
        return;
    };
    let alive = s.alive.as_deref().unwrap_or(&m.alive);
    let k = alive.iter().filter(|a| **a).count();
    let cells = m.grid_h * m.grid_w;
    let types_alive = alive
        .chunks(cells.max(1))
        .filter(|c| c.iter().any(|a| *a))
        .count();
    ui.label(format!(
        "K/N: {k}/{} capsules alive, {types_alive}/{} types",
        alive.len(),
        m.types
    ));
    let per_row = 8usize;
    let cell = ((ui.available_width() / per_row as f32) / (m.grid_w as f32 + 1.0)).clamp(3.0, 12.0);
    let block = vec2(cell * (m.grid_w as f32 + 1.0), cell * (m.grid_h as f32 + 1.0));
    let rows = m.types.div_ceil(per_row);
    let (resp, painter) = ui.allocate_painter(
        vec2(block.x * per_row as f32, block.y * rows as f32),
        Sense::hover(),
    );
    let origin = resp.rect.min;
    let max_act = s
        .activations
        .as_ref()
        .map(|a| a.iter().cloned().fold(0.0f32, f32::max))
        .unwrap_or(1.0)
        .max(1e-6);
    let mut hovered = None;
    for t in 0..m.types {
        let bx = origin.x + (t % per_row) as f32 * block.x;
        let by = origin.y + (t / per_row) as f32 * block.y;
        for y in 0..m.grid_h {
            for x in 0..m.grid_w {
                let i = t * cells + y * m.grid_w + x;
                let r = Rect::from_min_size(
                    pos2(bx + x as f32 * cell, by + y as f32 * cell),
                    vec2(cell - 1.0, cell - 1.0),
                );
                let colour = if !alive.get(i).copied().unwrap_or(false) {
                    Color32::from_gray(30)
                } else {
                    let a = s
                        .activations
                        .as_ref()
                        .and_then(|a| a.get(i))
                        .copied()
                        .unwrap_or(0.5 * max_act)
                        / max_act;
                    Color32::from_rgb(
                        (40.0 + 215.0 * a) as u8,
                        (80.0 + 100.0 * a) as u8,
                        (200.0 - 150.0 * a) as u8,
                    )
                };
                painter.rect_filled(r, 0.0, colour);
                if resp.hovered() && resp.hover_pos().is_some_and(|p| r.contains(p)) {
                    hovered = Some((i, t, y, x));
                }
            }
        }
    }
    if let Some((i, t, y, x)) = hovered {
        let norm = m.w_norms.get(i).copied().unwrap_or(0.0);
        let state = if alive.get(i).copied().unwrap_or(false) {
            "alive"
        } else {
            "dead"
        };
        resp.on_hover_text(format!(
            "capsule {i}: type {t}, position ({y}, {x}), |W| {norm:.3}, {state}"
        ));
    }
}
