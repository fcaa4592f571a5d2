//! A minimal line chart written as PNG (no fonts: the axes run from 0 to 1 on both sides,
//! with tick marks every 0.1; README explains the colours).

use std::path::Path;

use image::{Rgb, RgbImage};

/// One line of the chart: points in [0, 1] x [0, 1] and a colour.
pub struct Series {
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
