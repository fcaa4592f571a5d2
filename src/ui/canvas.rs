//! Canvas panel: draw a digit with the mouse, clear it, load an image or pick a random
//! test digit; shows the 28x28 input the network sees.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, pos2, vec2};

use crate::app::AppState;

/// Side of the drawing area in canvas pixels.
pub const CANVAS_PX: usize = 140;
/// Brush radius in canvas pixels.
pub const BRUSH: f32 = 7.0;

/// The drawing and its rasterised pixels.
#[derive(Clone)]
pub struct Canvas {
    /// Ink per canvas pixel, `CANVAS_PX * CANVAS_PX`, in [0, 1].
    pub ink: Vec<f32>,
    /// The network input shown beside the canvas (28x28).
    pub input: Vec<f32>,
    last: Option<Pos2>,
    /// The ink as a texture, uploaded again only after the ink changed.
    texture: Option<egui::TextureHandle>,
    dirty: bool,
}

impl std::fmt::Debug for Canvas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ink = self.ink.iter().filter(|v| **v > 0.0).count();
        f.debug_struct("Canvas")
            .field("inked_pixels", &ink)
            .finish_non_exhaustive()
    }
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            ink: vec![0.0; CANVAS_PX * CANVAS_PX],
            input: vec![0.0; 28 * 28],
            last: None,
            texture: None,
            dirty: true,
        }
    }
}

impl Canvas {
    /// Paints an antialiased round stroke segment from `a` to `b` (canvas pixels).
    pub fn stroke(&mut self, a: Pos2, b: Pos2) {
        self.dirty = true;
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
        self.dirty = true;
        self.ink.iter_mut().for_each(|v| *v = 0.0);
        self.input.iter_mut().for_each(|v| *v = 0.0);
    }
}

impl Canvas {
    /// The ink's texture, uploaded again only when the ink changed since the last call.
    fn texture(&mut self, ctx: &egui::Context) -> egui::TextureId {
        let image = || grey_image(&self.ink, CANVAS_PX);
        match &mut self.texture {
            Some(t) if self.dirty => t.set(image(), egui::TextureOptions::LINEAR),
            Some(_) => {}
            None => self.texture = Some(ctx.load_texture("canvas", image(), egui::TextureOptions::LINEAR)),
        }
        self.dirty = false;
        self.texture
            .as_ref()
            .map_or_else(egui::TextureId::default, |t| t.id())
    }
}

/// The whole texture, as texture coordinates.
const UV: Rect = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));

/// A grey image of `side x side` values in [0, 1].
fn grey_image(pixels: &[f32], side: usize) -> egui::ColorImage {
    color_image(pixels, (1, side, side))
}

/// An image of `channels x height x width` values in [0, 1] (channel-first): grey for one
/// channel, RGB for three or more (the first three).
fn color_image(pixels: &[f32], (channels, height, width): (usize, usize, usize)) -> egui::ColorImage {
    let plane = height * width;
    let at = |c: usize, i: usize| {
        let v = pixels.get(c * plane + i).copied().unwrap_or(0.0);
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    };
    if channels >= 3 {
        let rgb: Vec<u8> = (0..plane).flat_map(|i| [at(0, i), at(1, i), at(2, i)]).collect();
        egui::ColorImage::from_rgb([width, height], &rgb)
    } else {
        let grey: Vec<u8> = (0..plane).map(|i| at(0, i)).collect();
        egui::ColorImage::from_gray([width, height], &grey)
    }
}

/// Draws the canvas panel: a drawing canvas for models that take MNIST digits, else a
/// test-image picker.
pub fn show(ui: &mut Ui, s: &mut AppState) {
    if !s.takes_digits() {
        return show_picker(ui, s);
    }
    ui.heading("Draw a digit");
    // the canvas shrinks in a narrow window, leaving room for the column beside it
    let side = (ui.available_width() - 150.0).clamp(96.0, CANVAS_PX as f32 * 1.5);
    ui.horizontal(|ui| {
        let size = vec2(side, side);
        let (resp, painter) = ui.allocate_painter(size, Sense::drag());
        let rect = resp.rect;
        let scale = rect.width() / CANVAS_PX as f32;
        let texture = s.canvas.texture(ui.ctx());
        painter.image(texture, rect, UV, Color32::WHITE);
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
            show_image(ui, &s.canvas.input, (1, 28, 28), 4.0);
            if ui.button("Clear").clicked() {
                s.canvas.clear();
                s.inspection = None;
                // the capsule map must not keep colouring the erased digit
                s.activations = None;
            }
            if ui.button("Random test digit").clicked() {
                s.random_digit();
            }
        });
    });
    image_file_row(ui, s);
}

/// "Image file" with its path field (as wide as the panel allows) and "Load image".
fn image_file_row(ui: &mut Ui, s: &mut AppState) {
    ui.horizontal(|ui| {
        let l = ui.label("Image file");
        let width = (ui.available_width() - 90.0).max(60.0);
        ui.add(egui::TextEdit::singleline(&mut s.image_path).desired_width(width))
            .labelled_by(l.id);
        if ui.button("Load image").clicked() {
            let path = s.image_path.clone();
            s.load_image(std::path::Path::new(&path));
        }
    });
}

/// The panel for a model that takes other images than drawn digits (e.g. CIFAR-10's
/// colour images): a test image of its dataset or an image file, at the model's size.
fn show_picker(ui: &mut Ui, s: &mut AppState) {
    ui.heading("Test image");
    let shape = s.input_shape();
    let (channels, height, width) = shape;
    let kind = if channels == 1 { "grey" } else { "colour" };
    ui.label(format!(
        "This model takes {width}x{height} {kind} images: pick a test image of its dataset or load an image file."
    ));
    ui.horizontal(|ui| {
        let scale = (CANVAS_PX as f32 * 1.5 / height.max(width).max(1) as f32).max(1.0);
        show_image(ui, &s.canvas.input, shape, scale);
        ui.vertical(|ui| {
            if let Some(label) = s.picked_label {
                let name = s
                    .model
                    .as_ref()
                    .map_or(label.to_string(), |m| m.class_name(label));
                ui.label(format!("Label: {name}"));
            }
            if ui.button("Random test image").clicked() {
                s.random_digit();
            }
        });
    });
    image_file_row(ui, s);
}

/// Paints an image of `shape` = (channels, height, width), values in [0, 1] channel-first,
/// with `scale` points per pixel, as one textured
/// rectangle; the texture is cached under the widget's id and uploaded again only when the
/// pixels change.
pub fn show_image(ui: &mut Ui, pixels: &[f32], shape: (usize, usize, usize), scale: f32) -> Rect {
    let (_, height, width) = shape;
    let (resp, painter) =
        ui.allocate_painter(vec2(width as f32 * scale, height as f32 * scale), Sense::hover());
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        shape.hash(&mut h);
        pixels.iter().for_each(|v| v.to_bits().hash(&mut h));
        h.finish()
    };
    let id = resp.id.with("image");
    let cached: Option<(u64, egui::TextureHandle)> = ui.data(|d| d.get_temp(id));
    let texture = match cached {
        Some((old, t)) if old == hash => t,
        _ => {
            let t = ui.ctx().load_texture(
                format!("image-{id:?}"),
                color_image(pixels, shape),
                egui::TextureOptions::NEAREST,
            );
            ui.data_mut(|d| d.insert_temp(id, (hash, t.clone())));
            t
        }
    };
    painter.image(texture.id(), resp.rect, UV, Color32::WHITE);
    resp.rect
}
