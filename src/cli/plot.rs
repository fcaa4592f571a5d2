//! Line charts drawn by `plotters`, as SVG and as PNG with the same layout: a title, both
//! axes labelled with ticks, lines with a dot at every point, and a legend right of the plot
//! area so it never covers the data. Text is set in an embedded font (Ubuntu Light, under
//! the Ubuntu Font Licence in `assets/fonts/`), so no system font library is needed.

use std::sync::OnceLock;

use image::ImageEncoder as _;
use image::codecs::png::PngEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One line of the chart: points with x in [0, 1] and y from 0 up, a colour and a name.
pub struct Series {
    /// Name in the legend.
    pub name: &'static str,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// Line and marker colour.
    pub color: [u8; 3],
}

/// What a chart shows: its title, axis labels and lines.
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label of the x axis (0 to 1).
    pub x_label: &'a str,
    /// Label of the y axis (0 to the largest of 1 and the series' values).
    pub y_label: &'a str,
    /// The lines, in legend order.
    pub series: &'a [Series],
}

/// Why a chart cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font is not a font `ab_glyph` can read.
    #[error("the embedded chart font cannot be read")]
    Font,
    /// plotters failed to draw.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    /// The PNG encoder failed.
    #[error("cannot encode the chart as PNG: {0}")]
    Png(#[from] image::ImageError),
}

/// Chart size in pixels.
const W: u32 = 820;
/// Chart height in pixels.
const H: u32 = 460;
/// Width of the legend column right of the plot.
const LEGEND_W: u32 = 230;
/// The family name the embedded font is registered under (SVG viewers use their own).
const FAMILY: &str = "sans-serif";
/// The embedded font: Ubuntu Light, from egui's default fonts.
static FONT: &[u8] = include_bytes!("../../assets/fonts/Ubuntu-Light.ttf");
/// Grid lines.
const GRID: RGBColor = RGBColor(228, 228, 228);

/// Registers the embedded font with plotters, once.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// A plotters error as a [`PlotError`].
fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The chart as an SVG document.
pub fn svg_chart(chart: &Chart) -> Result<String, PlotError> {
    ensure_font()?;
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area(),
        chart,
    )?;
    Ok(svg)
}

/// The chart as the bytes of a PNG file.
pub fn png_chart(chart: &Chart) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area(),
        chart,
    )?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(&rgb, W, H, image::ExtendedColorType::Rgb8)?;
    Ok(png)
}

/// The top of the y axis: 1, or the largest value rounded up to a multiple of 0.2 (a value
/// at most 0.01 over a multiple, as a ratio of rounded numbers can be, is not rounded up).
fn y_top(series: &[Series]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(1.0f64, f64::max);
    ((max - 0.01) * 5.0).ceil().max(5.0) / 5.0
}

/// Draws the whole chart on `root`: white background, title, plot and legend.
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let body = root
        .margin(6, 0, 0, 0)
        .titled(chart.title, (FAMILY, 24))
        .map_err(draw_err)?;
    let (plot, legend) = body.split_horizontally(W - LEGEND_W);
    draw_plot(&plot, chart)?;
    draw_legend(&legend, chart.series)?;
    root.present().map_err(draw_err)
}

/// The axes, grid, tick labels, axis labels and the series.
fn draw_plot<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), PlotError> {
    let top = y_top(chart.series);
    let mut c = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(64)
        // a hair above the top, so that the top tick (7 x 0.2 > 1.4 in floating point) shows
        .build_cartesian_2d(0f64..1f64, 0f64..top + 1e-9)
        .map_err(draw_err)?;
    c.configure_mesh()
        .x_labels(11)
        // a tick every 0.2 up to 2.4; plotters picks fewer, rounder ones above that
        .y_labels(((top / 0.2).round() as usize + 1).min(13))
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(draw_err)?;
    for s in chart.series {
        let colour = RGBColor(s.color[0], s.color[1], s.color[2]);
        let line = LineSeries::new(s.points.iter().copied(), colour.stroke_width(2));
        c.draw_series(line).map_err(draw_err)?;
        let dots = s.points.iter().map(|&p| Circle::new(p, 4, colour.filled()));
        c.draw_series(dots).map_err(draw_err)?;
    }
    Ok(())
}

/// One legend row per series: a short line with a dot, then the name.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), PlotError> {
    let text = TextStyle::from((FAMILY, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, s) in series.iter().enumerate() {
        let colour = RGBColor(s.color[0], s.color[1], s.color[2]);
        let y = 24 + 28 * k as i32;
        let (x0, x1) = (8, 36);
        let line = PathElement::new(vec![(x0, y), (x1, y)], colour.stroke_width(3));
        area.draw(&line).map_err(draw_err)?;
        area.draw(&Circle::new(((x0 + x1) / 2, y), 4, colour.filled()))
            .map_err(draw_err)?;
        area.draw(&Text::new(s.name, (x1 + 8, y), text.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> [Series; 2] {
        [
            Series {
                name: "accuracy",
                points: vec![(0.0, 0.99), (0.5, 0.98)],
                color: [1, 2, 3],
            },
            Series {
                name: "time <ratio>",
                points: vec![(0.0, 1.0), (0.5, 1.3)],
                color: [4, 5, 6],
            },
        ]
    }

    fn chart(series: &[Series]) -> Chart<'_> {
        Chart {
            title: "MNIST",
            x_label: "sparsity",
            y_label: "fraction",
            series,
        }
    }

    #[test]
    fn svg_has_every_series_and_label() {
        let series = series();
        let svg = svg_chart(&chart(&series)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for colour in ["#010203", "#040506"] {
            let count = |tag: &str, attr: &str| {
                let want = format!("{attr}=\"{colour}\"");
                svg.lines()
                    .filter(|l| l.starts_with(tag) && l.contains(&want))
                    .count()
            };
            assert_eq!(count("<polyline", "stroke"), 2, "its line and its legend's");
            assert_eq!(count("<circle", "fill"), 3, "a dot per point and in the legend");
        }
        for text in ["accuracy", "time &lt;ratio&gt;", "sparsity", "fraction", "MNIST"] {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text} missing: {svg}"
            );
        }
        assert!(
            svg.contains(">\n1.4\n</text>") && !svg.contains(">\n1.6\n</text>"),
            "y axis up to the largest value, rounded up"
        );
    }

    #[test]
    fn y_axis_ends_at_one_or_the_next_fifth_above_the_data() {
        let top = |y: f64| {
            y_top(&[Series {
                name: "",
                points: vec![(0.0, y)],
                color: [0; 3],
            }])
        };
        assert_eq!(top(0.3), 1.0);
        assert_eq!(top(1.005), 1.0, "rounding noise over 1");
        assert_eq!(top(1.3), 1.4);
        assert_eq!(top(f64::NAN), 1.0);
    }

    /// Share of non-white pixels in the rectangle [x0, x1) x [y0, y1) of a PNG.
    fn ink(png: &[u8], (x0, x1): (u32, u32), (y0, y1): (u32, u32)) -> f64 {
        let img = image::load_from_memory(png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (W, H));
        let mut inked = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                inked += usize::from(img.get_pixel(x, y).0 != [255, 255, 255]);
            }
        }
        inked as f64 / ((x1 - x0) * (y1 - y0)) as f64
    }

    #[test]
    fn png_has_text_in_the_title_legend_and_axis_labels() {
        let series = series();
        let png = png_chart(&chart(&series)).unwrap();
        let legend = (W - LEGEND_W + 40, W);
        assert!(ink(&png, legend, (30, 100)) > 0.01, "legend names");
        assert!(ink(&png, (0, W - LEGEND_W), (0, 30)) > 0.005, "title");
        assert!(ink(&png, (0, 30), (100, H - 100)) > 0.005, "y axis label");
        assert!(
            ink(&png, (100, W - LEGEND_W), (H - 30, H)) > 0.005,
            "x axis label"
        );
        let empty = Chart {
            title: "",
            x_label: "",
            y_label: "",
            series: &[],
        };
        let blank = png_chart(&empty).unwrap();
        assert_eq!(ink(&blank, legend, (30, 100)), 0.0, "no legend without series");
    }
}
