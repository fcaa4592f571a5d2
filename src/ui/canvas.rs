//! Canvas panel: draw a digit with the mouse, clear it, load an image or pick a random
//! test digit; shows the 28x28 input the network sees.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, pos2, vec2};

use crate::app::AppState;

/// Side of the drawing area in canvas pixels.
pub const CANVAS_PX: usize = 140;
/// Brush radius in canvas pixels.
pub const BRUSH: f32 = 7.0;

/// The drawing and its rasterised pixels.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Ink per canvas pixel, `CANVAS_PX * CANVAS_PX`, in [0, 1].
    pub ink: Vec<f32>,
    /// The network input shown beside the canvas (28x28).
    pub input: Vec<f32>,
    last: Option<Pos2>,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            ink: vec![0.0; CANVAS_PX * CANVAS_PX],
            input: vec![0.0; 28 * 28],
            last: None,
        }
    }
}

impl Canvas {
    /// Paints an antialiased round stroke segment from `a` to `b` (canvas pixels).
    pub fn stroke(&mut self, a: Pos2, b: Pos2) {
        let steps = ((b - a).length() / 1.5).ceil().max(1.0) as usize;
        for s in 0..=steps {
            let p = a + (b - a) * (s as f32 / steps as f32);
            let (x0, x1) = (
                (p.x - BRUSH - 1.0).max(0.0) as usize,
                ((p.x + BRUSH + 1.0) as usize).min(CANVAS_PX - 1),
            );
            let (y0, y1) = (
                (p.y - BRUSH - 1.0).max(0.0) as usize,
                ((p.y + BRUSH + 1.0) as usize).min(CANVAS_PX - 1),
            );
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let d = pos2(x as f32 + 0.5, y as f32 + 0.5).distance(p);
                    let v = (BRUSH + 0.5 - d).clamp(0.0, 1.0);
                    let cell = &mut self.ink[y * CANVAS_PX + x];
                    *cell = cell.max(v);
                }
            }
        }
    }

    /// Clears the drawing.
    pub fn clear(&mut self) {
        self.ink.iter_mut().for_each(|v| *v = 0.0);
        self.input.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Draws the canvas panel.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Draw a digit");
    ui.horizontal(|ui| {
        let size = vec2(CANVAS_PX as f32 * 1.5, CANVAS_PX as f32 * 1.5);
        let (resp, painter) = ui.allocate_painter(size, Sense::drag());
        let rect = resp.rect;
        painter.rect_filled(rect, 4.0, Color32::BLACK);
        let scale = rect.width() / CANVAS_PX as f32;
        for y in 0..CANVAS_PX {
            for x in 0..CANVAS_PX {
                let v = s.canvas.ink[y * CANVAS_PX + x];
                if v > 0.0 {
                    let r = Rect::from_min_size(
                        rect.min + vec2(x as f32 * scale, y as f32 * scale),
                        vec2(scale, scale),
                    );
                    painter.rect_filled(r, 0.0, Color32::from_gray((v * 255.0) as u8));
                }
            }
        }
        painter.rect_stroke(
            rect,
            4.0,
            Stroke::new(1.0, Color32::GRAY),
            egui::StrokeKind::Inside,
        );
        if let Some(p) = resp.interact_pointer_pos() {
            let local = pos2((p.x - rect.min.x) / scale, (p.y - rect.min.y) / scale);
            let from = s.canvas.last.unwrap_or(local);
            s.canvas.stroke(from, local);
            s.canvas.last = Some(local);
            s.canvas_changed();
        }
        if resp.drag_stopped() || !resp.dragged() {
            s.canvas.last = None;
        }
        ui.vertical(|ui| {
            ui.label("Network input (28x28)");
            show_image(ui, &s.canvas.input, 28, 4.0);
            if ui.button("Clear").clicked() {
                s.canvas.clear();
                s.inspection = None;
            }
            if ui.button("Random test digit").clicked() {
                s.random_digit();
            }
            ui.horizontal(|ui| {
                let l = ui.label("Image file");
                ui.text_edit_singleline(&mut s.image_path).labelled_by(l.id);
                if ui.button("Load image").clicked() {
                    let path = s.image_path.clone();
                    s.load_image(std::path::Path::new(&path));
                }
            });
        });
    });
}

/// Paints a grey image (values in [0, 1]) with `scale` points per pixel.
pub fn show_image(ui: &mut Ui, pixels: &[f32], side: usize, scale: f32) -> Rect {
    let (resp, painter) = ui.allocate_painter(vec2(side as f32 * scale, side as f32 * scale), Sense::hover());
    painter.rect_filled(resp.rect, 0.0, Color32::BLACK);
    for (i, v) in pixels.iter().enumerate().take(side * side) {
        if *v > 0.01 {
            let r = Rect::from_min_size(
                resp.rect.min + vec2((i % side) as f32 * scale, (i / side) as f32 * scale),
                vec2(scale, scale),
            );
            painter.rect_filled(r, 0.0, Color32::from_gray((v.clamp(0.0, 1.0) * 255.0) as u8));
        }
    }
    resp.rect
}
