//! Canvas panel: draw a digit with the mouse, clear it, load an image or pick a random
//! test digit; shows the 28x28 input the network sees.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, pos2, vec2};

use std::path::Path;

use super::commands::{AppEvent, Commands};
use crate::inspect::{InspectCommand, InspectEvent, ModelSummary, mnist_style};

/// Side of the drawing area in canvas pixels.
pub const CANVAS_PX: usize = 140;
/// Brush radius in canvas pixels.
pub const BRUSH: f32 = 7.0;

/// The drawing and its rasterised pixels.
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

/// The canvas panel's state: the drawing, the input it gives, and the test images to pick.
#[derive(Debug, Default)]
pub struct CanvasPanel {
    /// The drawing.
    pub canvas: Canvas,
    /// Path of an image to load.
    pub image_path: String,
    /// The label of the test image shown, when one was picked from the model's dataset.
    pub picked_label: Option<usize>,
    /// The model in use (its input size and class names).
    pub model: Option<ModelSummary>,
    /// The last error about the image (loading it, or the worker refusing it).
    pub error: Option<String>,
    next_digit: usize,
    /// "Clear" was sent and no image asked for since: an image the worker picked or read
    /// for an earlier request is not shown (until the worker answers "Clear").
    cleared: bool,
}

impl CanvasPanel {
    /// The input the current model takes, (channels, height, width); MNIST's without one.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        ModelSummary::input_of(self.model.as_ref())
    }

    /// Whether the current model takes drawn digits (28x28 grey); otherwise the panel
    /// picks test images of the model's own dataset or loads image files.
    pub fn takes_digits(&self) -> bool {
        self.model.as_ref().is_none_or(ModelSummary::takes_digits)
    }

    fn send(&mut self, c: InspectCommand, cmds: &mut dyn Commands) {
        match c {
            InspectCommand::Forget => self.cleared = true,
            InspectCommand::Inspect(_)
            | InspectCommand::PickTestImage(_)
            | InspectCommand::LoadImage { .. } => self.cleared = false,
            _ => {}
        }
        self.error = cmds.inspect(c).err().map(|e| e.to_string());
    }

    /// Sends the canvas input for inspection.
    fn inspect(&mut self, cmds: &mut dyn Commands) {
        self.send(InspectCommand::Inspect(self.canvas.input.clone()), cmds);
    }

    /// The drawing changed: preprocess it as MNIST digits are, and inspect it.
    pub fn drawn(&mut self, cmds: &mut dyn Commands) {
        let px = CANVAS_PX;
        self.canvas.input = mnist_style(&self.canvas.ink, px, px);
        self.inspect(cmds);
    }

    /// "Clear": the drawing, and the inspection of it everywhere (the worker forgets it).
    pub fn clear(&mut self, cmds: &mut dyn Commands) {
        self.canvas.clear();
        self.picked_label = None;
        self.send(InspectCommand::Forget, cmds);
    }

    /// Shows the next test digit (or, for a model that takes other images, the next test
    /// image of its own dataset): the worker picks it and answers with it.
    pub fn random_digit(&mut self, cmds: &mut dyn Commands) {
        // the worker takes the index modulo the images it has
        self.next_digit = (self.next_digit * 7919 + 13) % 10_000;
        self.send(InspectCommand::PickTestImage(self.next_digit), cmds);
    }

    /// Asks the inspection worker to read an image file (at the model's input size) and
    /// inspect it; the canvas shows it when the worker answers.
    pub fn load_image(&mut self, path: &Path, cmds: &mut dyn Commands) {
        if path.as_os_str().is_empty() {
            self.error = Some("type the path of an image file (PNG or JPEG) first".into());
            return;
        }
        // a model that takes digits reads the file as a drawn digit, at the digits' size
        let digits = self.takes_digits();
        let command = InspectCommand::LoadImage {
            path: path.to_path_buf(),
            input: self.input_shape(),
            digits,
        };
        self.send(command, cmds);
    }

    /// Follows the inspection worker's events.
    pub fn on_event(&mut self, e: &AppEvent) {
        let AppEvent::Inspect(e) = e else { return };
        match e {
            InspectEvent::ModelReady(m) | InspectEvent::Kept(m) => {
                if self.input_shape() != m.input {
                    self.canvas.clear();
                    self.canvas.input = vec![0.0; m.input.0 * m.input.1 * m.input.2];
                    self.picked_label = None;
                }
                self.model = Some((**m).clone());
            }
            // the answer to a request made before "Clear"
            InspectEvent::Picked { .. } | InspectEvent::ImageLoaded(_) if self.cleared => {}
            InspectEvent::Forgotten => self.cleared = false,
            InspectEvent::Picked { pixels, label } => {
                self.canvas.clear();
                self.canvas.input = pixels.clone();
                self.picked_label = Some(*label);
                self.error = None;
            }
            InspectEvent::ImageLoaded(pixels) => {
                self.canvas.clear();
                self.canvas.input = pixels.clone();
                self.picked_label = None;
                self.error = None;
            }
            InspectEvent::Inspected(_) => self.error = None,
            InspectEvent::Failed(err) if err.about_the_image() => self.error = Some(err.to_string()),
            _ => {}
        }
    }

    /// Draws the panel: a drawing canvas for models that take MNIST digits, else a
    /// test-image picker.
    pub fn ui(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        if self.takes_digits() {
            self.drawing(ui, cmds);
        } else {
            self.picker(ui, cmds);
        }
        self.image_file_row(ui, cmds);
        super::training::error_line(ui, self.error.as_deref());
    }

    fn drawing(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        ui.heading("Draw a digit");
        // the canvas shrinks in a narrow window, leaving room for the column beside it
        let side = (ui.available_width() - 150.0).clamp(96.0, CANVAS_PX as f32 * 1.5);
        ui.horizontal(|ui| {
            let (resp, painter) = ui.allocate_painter(vec2(side, side), Sense::drag());
            let rect = resp.rect;
            let scale = rect.width() / CANVAS_PX as f32;
            let texture = self.canvas.texture(ui.ctx());
            painter.image(texture, rect, UV, Color32::WHITE);
            painter.rect_stroke(
                rect,
                4.0,
                Stroke::new(1.0, Color32::GRAY),
                egui::StrokeKind::Inside,
            );
            if let Some(p) = resp.interact_pointer_pos() {
                let local = pos2((p.x - rect.min.x) / scale, (p.y - rect.min.y) / scale);
                let from = self.canvas.last.unwrap_or(local);
                self.canvas.stroke(from, local);
                self.canvas.last = Some(local);
                self.drawn(cmds);
            }
            if resp.drag_stopped() || !resp.dragged() {
                self.canvas.last = None;
            }
            ui.vertical(|ui| {
                ui.label("Network input (28x28)");
                show_image(ui, &self.canvas.input, (1, 28, 28), 4.0);
                if ui.button("Clear").clicked() {
                    self.clear(cmds);
                }
                if ui.button("Random test digit").clicked() {
                    self.random_digit(cmds);
                }
            });
        });
    }

    /// "Image file" with its path field (as wide as the panel allows) and "Load image".
    fn image_file_row(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        ui.horizontal(|ui| {
            let l = ui.label("Image file");
            let width = (ui.available_width() - 90.0).max(60.0);
            ui.add(egui::TextEdit::singleline(&mut self.image_path).desired_width(width))
                .labelled_by(l.id);
            if ui.button("Load image").clicked() {
                let path = std::path::PathBuf::from(&self.image_path);
                self.load_image(&path, cmds);
            }
        });
    }

    /// For a model that takes other images than drawn digits (e.g. CIFAR-10's colour
    /// images): a test image of its dataset or an image file, at the model's size.
    fn picker(&mut self, ui: &mut Ui, cmds: &mut dyn Commands) {
        ui.heading("Test image");
        let shape = self.input_shape();
        let (channels, height, width) = shape;
        let kind = if channels == 1 { "grey" } else { "colour" };
        ui.label(format!(
            "This model takes {width}x{height} {kind} images: pick a test image of its dataset or load an image file."
        ));
        ui.horizontal(|ui| {
            let scale = (CANVAS_PX as f32 * 1.5 / height.max(width).max(1) as f32).max(1.0);
            show_image(ui, &self.canvas.input, shape, scale);
            ui.vertical(|ui| {
                if let Some(label) = self.picked_label {
                    let name = self
                        .model
                        .as_ref()
                        .map_or(label.to_string(), |m| m.class_name(label));
                    ui.label(format!("Label: {name}"));
                }
                if ui.button("Random test image").clicked() {
                    self.random_digit(cmds);
                }
            });
        });
    }
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
