//! MNIST-style preprocessing of a drawn or loaded digit: the strokes are fitted into a
//! 20x20 box keeping their aspect ratio, then placed in the 28x28 input so that their
//! centre of mass is at the centre, as MNIST's digits were.

/// Side of the network input.
pub const SIDE: usize = 28;
/// Side of the box the digit is fitted into.
pub const BOX: usize = 20;
/// Pixels at or below this value count as background.
pub const INK: f32 = 0.05;

/// Preprocesses a grey image (`width * height` values in [0, 1], white ink on black) into
/// the 28x28 network input. An empty image gives all zeros.
pub fn mnist_style(pixels: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0.0; SIDE * SIDE];
    let ink = |x: usize, y: usize| pixels[y * width + x];
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if ink(x, y) > INK {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    if x0 == usize::MAX {
        return out;
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let scale = BOX as f32 / bw.max(bh) as f32;
    let (sw, sh) = (
        ((bw as f32 * scale).round() as usize).max(1),
        ((bh as f32 * scale).round() as usize).max(1),
    );
    // area-average resampling of the bounding box into sw x sh
    let mut small = vec![0.0f32; sw * sh];
    for sy in 0..sh {
        for sx in 0..sw {
            let fx0 = x0 as f32 + sx as f32 / scale;
            let fy0 = y0 as f32 + sy as f32 / scale;
            let fx1 = x0 as f32 + (sx + 1) as f32 / scale;
            let fy1 = y0 as f32 + (sy + 1) as f32 / scale;
            let (mut sum, mut area) = (0.0, 0.0);
            let mut y = fy0.floor() as usize;
            while (y as f32) < fy1 && y <= y1 {
                let mut x = fx0.floor() as usize;
                let wy = (fy1.min(y as f32 + 1.0) - fy0.max(y as f32)).max(0.0);
                while (x as f32) < fx1 && x <= x1 {
                    let wx = (fx1.min(x as f32 + 1.0) - fx0.max(x as f32)).max(0.0);
                    sum += ink(x, y) * wx * wy;
                    area += wx * wy;
                    x += 1;
                }
                y += 1;
            }
            small[sy * sw + sx] = if area > 0.0 { sum / area } else { 0.0 };
        }
    }
    // centre of mass of the fitted digit
    let (mut mx, mut my, mut mass) = (0.0, 0.0, 0.0);
    for y in 0..sh {
        for x in 0..sw {
            let v = small[y * sw + x];
            mx += v * x as f32;
            my += v * y as f32;
            mass += v;
        }
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (sw as f32 / 2.0, sh as f32 / 2.0)
    };
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE - sw) as i64) as usize;
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE - sh) as i64) as usize;
    for y in 0..sh {
        for x in 0..sw {
            out[(oy + y) * SIDE + ox + x] = small[y * sw + x].clamp(0.0, 1.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn com(img: &[f32]) -> (f32, f32) {
        let (mut mx, mut my, mut m) = (0.0, 0.0, 0.0);
        for (i, v) in img.iter().enumerate() {
            mx += v * (i % SIDE) as f32;
            my += v * (i / SIDE) as f32;
            m += v;
        }
        (mx / m, my / m)
    }

    #[test]
    fn a_small_stroke_in_a_corner_is_fitted_and_centred() {
        // a 200x200 canvas with a 10x40 bar near the top-left corner
        let (w, h) = (200, 200);
        let mut canvas = vec![0.0; w * h];
        for y in 5..45 {
            for x in 8..18 {
                canvas[y * w + x] = 1.0;
            }
        }
        let img = mnist_style(&canvas, w, h);
        let (cx, cy) = com(&img);
        assert!((cx - 13.5).abs() <= 1.0 && (cy - 13.5).abs() <= 1.0, "{cx} {cy}");
        let rows: Vec<usize> = (0..SIDE)
            .filter(|y| (0..SIDE).any(|x| img[y * SIDE + x] > INK))
            .collect();
        let cols: Vec<usize> = (0..SIDE)
            .filter(|x| (0..SIDE).any(|y| img[y * SIDE + x] > INK))
            .collect();
        assert_eq!(rows.len(), BOX, "the long side fills the 20-pixel box");
        assert_eq!(cols.len(), 5, "aspect ratio kept: 10x40 -> 5x20");
    }

    #[test]
    fn an_empty_canvas_stays_empty() {
        assert!(mnist_style(&[0.0; 100], 10, 10).iter().all(|v| *v == 0.0));
    }
}
