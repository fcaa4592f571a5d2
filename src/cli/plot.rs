//! Minimal line charts: an SVG with labelled axes and a legend, and the same lines as a PNG
//! (no fonts there: both axes run from 0 to 1 with tick marks every 0.1).

use std::fmt::Write as _;

use std::path::Path;

use image::{Rgb, RgbImage};

/// One line of the chart: points in [0, 1] x [0, 1], a colour and a name.
pub struct Series {
    /// Name in the SVG's legend.
    pub name: &'static str,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub color: [u8; 3],
}

const W: u32 = 640;
const H: u32 = 400;
const M: u32 = 40;

fn to_px(x: f64, y: f64) -> (i64, i64) {
    let px = M as f64 + x.clamp(0.0, 1.0) * (W - 2 * M) as f64;
    let py = (H - M) as f64 - y.clamp(0.0, 1.0) * (H - 2 * M) as f64;
    (px.round() as i64, py.round() as i64)
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < W && (y as u32) < H {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

fn line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), c: [u8; 3], thick: i64) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).max(1);
    for s in 0..=steps {
        let x = a.0 + (b.0 - a.0) * s / steps;
        let y = a.1 + (b.1 - a.1) * s / steps;
        for dx in -thick..=thick {
            for dy in -thick..=thick {
                put(img, x + dx, y + dy, c);
            }
        }
    }
}

/// Draws the series on white with grey axes and ticks, and saves a PNG.
pub fn save_chart(path: &Path, series: &[Series]) -> Result<(), image::ImageError> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let grey = [150, 150, 150];
    line(&mut img, to_px(0.0, 0.0), to_px(1.0, 0.0), grey, 0);
    line(&mut img, to_px(0.0, 0.0), to_px(0.0, 1.0), grey, 0);
    for i in 0..=10 {
        let t = i as f64 / 10.0;
        let (x, y) = to_px(t, 0.0);
        line(&mut img, (x, y), (x, y + 5), grey, 0);
        let (x, y) = to_px(0.0, t);
        line(&mut img, (x - 5, y), (x, y), grey, 0);
    }
    for s in series {
        for w in s.points.windows(2) {
            line(&mut img, to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1), s.color, 1);
        }
        for &(x, y) in &s.points {
            let (px, py) = to_px(x, y);
            line(&mut img, (px, py), (px, py), s.color, 3);
        }
    }
    img.save(path)
}

/// Where an SVG chart's plot area lies: sizes and margins in pixels, and the top of the y
/// axis.
struct SvgFrame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    y_max: f64,
}

impl SvgFrame {
    /// The pixel column of x in [0, 1].
    fn px(&self, x: f64) -> f64 {
        self.left + x.clamp(0.0, 1.0) * (self.w - self.left - self.right)
    }

    /// The pixel row of y in [0, y_max].
    fn py(&self, y: f64) -> f64 {
        self.h - self.bottom - y.clamp(0.0, self.y_max) / self.y_max * (self.h - self.top - self.bottom)
    }
}

/// The series as an SVG chart titled `title`, x from 0 to 1 (labelled `x_label`), y from 0
/// to the largest of 1 and the series' values.
pub fn svg_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let f = SvgFrame {
        w: 680.0,
        h: 400.0,
        left: 60.0,
        right: 220.0,
        top: 40.0,
        bottom: 50.0,
        y_max: (y_max * 5.0).ceil() / 5.0,
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        f.w,
        f.h,
        (f.left + f.w - f.right) / 2.0,
        escape(title)
    );
    svg_grid(&mut svg, &f, x_label);
    for (k, s) in series.iter().enumerate() {
        svg_series(&mut svg, &f, k, s);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Grid lines and tick labels every 0.1 in x and 0.2 in y, and the x axis label.
fn svg_grid(svg: &mut String, f: &SvgFrame, x_label: &str) {
    for i in 0..=10 {
        let x = i as f64 / 10.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\">{x:.1}</text>",
            f.px(x),
            f.py(0.0),
            f.py(f.y_max),
            f.py(0.0) + 16.0
        );
    }
    let steps = (f.y_max / 0.2).round() as usize;
    for i in 0..=steps {
        let y = i as f64 * 0.2;
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{3}\" y=\"{4}\" text-anchor=\"end\">{y:.1}</text>",
            f.px(0.0),
            f.px(1.0),
            f.py(y),
            f.px(0.0) - 6.0,
            f.py(y) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        f.px(0.5),
        f.h - 10.0,
        escape(x_label)
    );
}

/// Series `k`: its line, a dot per point, and its legend entry right of the plot.
fn svg_series(svg: &mut String, f: &SvgFrame, k: usize, s: &Series) {
    let [r, g, b] = s.color;
    let points: Vec<String> = s
        .points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"rgb({r},{g},{b})\" stroke-width=\"2\"/>",
        points.join(" ")
    );
    for &(x, y) in &s.points {
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"rgb({r},{g},{b})\"/>",
            f.px(x),
            f.py(y)
        );
    }
    let ly = f.top + 10.0 + 20.0 * k as f64;
    let lx = f.w - f.right + 15.0;
    let _ = writeln!(
        svg,
        "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"rgb({r},{g},{b})\" \
         stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>",
        lx + 20.0,
        lx + 26.0,
        ly + 4.0,
        escape(s.name)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_every_series_and_label() {
        let series = [
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
        ];
        let svg = svg_chart("MNIST", "sparsity", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(">time &lt;ratio&gt;</text>"));
        assert!(
            svg.contains(">1.4</text>"),
            "y axis up to the largest value, rounded up"
        );
        assert!(svg.contains(">sparsity</text>") && svg.contains(">MNIST</text>"));
    }
}
