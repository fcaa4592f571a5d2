//! The routing view of the inspection panel: coupling coefficients c[i, j] of one routing
//! iteration. By default each column is a capsule type (the mean coupling of its routed
//! capsules to each class), which reads at a glance even for 1,152 capsules; clicking a
//! type drills down to its single capsules. Hovering a cell gives the exact value.

use egui::{Color32, Rect, Sense, Ui, pos2, vec2};

use crate::inspect::DigitInspection;

/// What the routing view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingView {
    /// One column per capsule type: the mean coupling of its capsules.
    #[default]
    Types,
    /// One column per routed capsule of one type.
    Capsules(usize),
}

/// What the routing view shows and its cached heatmap.
pub struct RoutingState {
    /// Routing iteration shown (0-based; clamped to the inspection's iterations, so the
    /// default shows the last).
    pub iter: usize,
    /// Capsule types, or the capsules of one type.
    pub view: RoutingView,
    /// The heatmap texture and the (inspection, iteration, view) it shows.
    texture: Option<((u64, usize, RoutingView), egui::TextureHandle)>,
}

impl Default for RoutingState {
    fn default() -> Self {
        Self {
            iter: usize::MAX,
            view: RoutingView::Types,
            texture: None,
        }
    }
}

impl std::fmt::Debug for RoutingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingState")
            .field("iter", &self.iter)
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

/// Columns of the view: a label for hover text and the routed capsules (positions in the
/// inspection's order) it averages.
struct Column {
    label: String,
    members: Vec<usize>,
}

/// The columns of `view` for an inspection whose routed capsules have dense `indices`, with
/// `cells` capsules per type (grid height x width).
fn columns(view: RoutingView, indices: &[usize], cells: usize) -> Vec<Column> {
    let cells = cells.max(1);
    match view {
        RoutingView::Types => {
            let mut types: Vec<usize> = indices.iter().map(|i| i / cells).collect();
            types.dedup();
            types
                .into_iter()
                .map(|t| Column {
                    label: format!("type {t}"),
                    members: (0..indices.len()).filter(|&p| indices[p] / cells == t).collect(),
                })
                .collect()
        }
        RoutingView::Capsules(t) => (0..indices.len())
            .filter(|&p| indices[p] / cells == t)
            .map(|p| Column {
                label: format!("capsule {} (type {t}, cell {})", indices[p], indices[p] % cells),
                members: vec![p],
            })
            .collect(),
    }
}

/// Mean coupling of every (class, column), row-major by class.
///
/// # Shapes
/// - `coupling`: `[J * K]` (class-major); returns `[J * columns]`
fn cell_values(coupling: &[f32], k: usize, cols: &[Column]) -> Vec<f32> {
    let classes = coupling.len() / k.max(1);
    let mut out = Vec::with_capacity(classes * cols.len());
    for j in 0..classes {
        for c in cols {
            let sum: f32 = c.members.iter().filter_map(|&p| coupling.get(j * k + p)).sum();
            out.push(sum / c.members.len().max(1) as f32);
        }
    }
    out
}

/// Draws the routing view of inspection `r` (number `id` of the inspections shown, for the
/// texture cache) of a model with `cells` capsules per type.
pub fn show(ui: &mut Ui, s: &mut RoutingState, r: &DigitInspection, (id, cells): (u64, usize)) {
    let iters = r.coupling.len();
    let k = r.capsules.max(1);
    if iters == 0 {
        return;
    }
    s.iter = s.iter.min(iters - 1);
    ui.horizontal(|ui| {
        ui.label("Routing, iteration");
        for i in 0..iters {
            ui.selectable_value(&mut s.iter, i, format!("{}", i + 1));
        }
    });
    if let RoutingView::Capsules(t) = s.view
        && ui.button(format!("type {t}: back to all types")).clicked()
    {
        s.view = RoutingView::Types;
    }
    let cells = if cells == 0 { k } else { cells };
    let cols = columns(s.view, &r.indices, cells);
    if cols.is_empty() {
        s.view = RoutingView::Types;
        return;
    }
    let values = cell_values(&r.coupling[s.iter], k, &cols);
    let classes = values.len() / cols.len();
    if classes == 0 {
        return;
    }
    let key = (id, s.iter, s.view);
    let texture = match &s.texture {
        Some((cached, t)) if *cached == key => t.clone(),
        _ => {
            let image = egui::ColorImage::new([cols.len(), classes], colours(&values, &r.coupling, classes));
            let t = ui
                .ctx()
                .load_texture("routing", image, egui::TextureOptions::NEAREST);
            s.texture = Some((key, t.clone()));
            t
        }
    };
    let width = ui.available_width().min(320.0);
    let (rect, resp) = ui.allocate_exact_size(vec2(width, 14.0 * classes as f32), Sense::click());
    super::training::name(&resp, "Routing heatmap");
    let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
    ui.painter().image(texture.id(), rect, uv, Color32::WHITE);
    interact(s, r, &resp, rect, (&cols, &values), cells);
    let shown = match s.view {
        RoutingView::Types => format!(
            "{} types (mean coupling per type; click one for its capsules)",
            cols.len()
        ),
        RoutingView::Capsules(t) => format!("the {} capsules of type {t}", cols.len()),
    };
    ui.small(format!(
        "{k} capsules x {classes} classes, shown as {shown}; rows: classes 0 (top) to {}. \
         Black: uniform coupling (1/{classes}, all of iteration 1); red to yellow: stronger, \
         blue: weaker.",
        classes - 1
    ));
}

/// Hover text with the exact value of the cell under the pointer, and a click on a type
/// column drilling down to its capsules.
fn interact(
    s: &mut RoutingState,
    r: &DigitInspection,
    resp: &egui::Response,
    rect: Rect,
    (cols, values): (&[Column], &[f32]),
    cells: usize,
) {
    let classes = values.len() / cols.len().max(1);
    let cell_at = |p: egui::Pos2| {
        let col = (((p.x - rect.min.x) / rect.width()) * cols.len() as f32) as usize;
        let row = (((p.y - rect.min.y) / rect.height()) * classes as f32) as usize;
        (col.min(cols.len() - 1), row.min(classes - 1))
    };
    if let Some(p) = resp.hover_pos() {
        let (col, row) = cell_at(p);
        let c = &cols[col];
        let what = if c.members.len() > 1 {
            format!("mean c over {} capsules", c.members.len())
        } else {
            "c".to_string()
        };
        resp.clone().on_hover_text_at_pointer(format!(
            "{}, class {row}: {what} = {:.4}",
            c.label,
            values[row * cols.len() + col]
        ));
    }
    if resp.clicked()
        && s.view == RoutingView::Types
        && let Some(p) = resp.interact_pointer_pos()
    {
        let (col, _) = cell_at(p);
        if let Some(&first) = cols[col].members.first() {
            s.view = RoutingView::Capsules(r.indices[first] / cells.max(1));
        }
    }
}

/// Colours of the cells: the departure from uniform routing (1/J), on one scale for every
/// iteration of this digit so that they compare; square root so small departures show.
fn colours(values: &[f32], coupling: &[Vec<f32>], classes: usize) -> Vec<Color32> {
    let uniform = 1.0 / classes.max(1) as f32;
    let top = coupling.iter().flatten().fold(uniform + 1e-6, |a, b| a.max(*b));
    values
        .iter()
        .map(|&v| {
            if v >= uniform {
                heat(((v - uniform) / (top - uniform)).sqrt())
            } else {
                cold(((uniform - v) / uniform).sqrt())
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_columns_average_their_capsules_and_drill_down_lists_one_type() {
        // 2 types of 3 cells; capsule 4 is dead, so type 1 routes capsules 3 and 5
        let indices = [0, 1, 2, 3, 5];
        let cols = columns(RoutingView::Types, &indices, 3);
        assert_eq!(cols.len(), 2);
        assert_eq!(cols[1].members, vec![3, 4]);
        // 2 classes x 5 routed capsules
        let coupling = [0.1, 0.2, 0.3, 0.4, 0.6, 0.9, 0.8, 0.7, 0.6, 0.4];
        let v = cell_values(&coupling, 5, &cols);
        let expected = [0.2, 0.5, 0.8, 0.5];
        assert!(v.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{v:?}");
        let one = columns(RoutingView::Capsules(1), &indices, 3);
        assert_eq!(one.len(), 2);
        assert!(one[1].label.starts_with("capsule 5"));
        assert_eq!(cell_values(&coupling, 5, &one), vec![0.4, 0.6, 0.6, 0.4]);
    }
}
