//! Loading an image file as network input.

use std::path::Path;

/// An image file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot read image: {reason}")]
pub struct ImageError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// Largest side of an image accepted for inspection, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Reads an image (PNG or JPEG; a regular file of at most
/// [`crate::fsio::MAX_IMAGE_FILE_BYTES`], at most [`MAX_IMAGE_SIDE`] pixels a side), converts it to grey, resizes it to `height x width` and
/// scales it to [0, 1]. A light background (mean above one half) is inverted, so a dark
/// digit on white paper looks like MNIST's white digit on black.
pub fn load_image(path: &Path, height: usize, width: usize) -> Result<Vec<f32>, ImageError> {
    let err = |reason: String| ImageError {
        path: path.display().to_string(),
        reason,
    };
    let bytes =
        crate::fsio::read_capped(path, crate::fsio::MAX_IMAGE_FILE_BYTES).map_err(|e| err(e.to_string()))?;
    let img = crate::fsio::decode_image(bytes, MAX_IMAGE_SIDE).map_err(err)?;
    let grey = img
        .resize_exact(width as u32, height as u32, image::imageops::FilterType::Triangle)
        .to_luma8();
    let mut pixels: Vec<f32> = grey.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
    let mean = pixels.iter().sum::<f32>() / pixels.len().max(1) as f32;
    if mean > 0.5 {
        pixels.iter_mut().for_each(|p| *p = 1.0 - *p);
    }
    Ok(pixels)
}

/// Reads an image file as the input of a model taking `input` images: as a drawn digit
/// ([`load_image`], then centred as MNIST's digits are) when the model takes `digits`,
/// else as it is ([`load_image_as`]).
pub fn load_input(path: &Path, input: (usize, usize, usize), digits: bool) -> Result<Vec<f32>, ImageError> {
    if digits {
        let (_, h, w) = input;
        load_image(path, h, w).map(|px| super::preprocess::mnist_style(&px, w, h))
    } else {
        load_image_as(path, input)
    }
}

/// Reads an image file as the input of a model taking `(channels, height, width)` images:
/// resized to `height x width`, in colour (channel-first RGB) for three channels or grey
/// for one, scaled to [0, 1], nothing inverted (for photographs, not drawn digits).
pub fn load_image_as(
    path: &Path,
    (channels, height, width): (usize, usize, usize),
) -> Result<Vec<f32>, ImageError> {
    let err = |reason: String| ImageError {
        path: path.display().to_string(),
        reason,
    };
    if channels != 1 && channels != 3 {
        return Err(err(format!(
            "the model takes {channels}-channel images; only grey or RGB load"
        )));
    }
    let bytes =
        crate::fsio::read_capped(path, crate::fsio::MAX_IMAGE_FILE_BYTES).map_err(|e| err(e.to_string()))?;
    let img = crate::fsio::decode_image(bytes, MAX_IMAGE_SIDE)
        .map_err(err)?
        .resize_exact(width as u32, height as u32, image::imageops::FilterType::Triangle);
    let plane = height * width;
    Ok(if channels == 1 {
        img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0).collect()
    } else {
        let rgb = img.to_rgb8();
        let mut out = vec![0.0; 3 * plane];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c] as f32 / 255.0;
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dark_digit_on_white_is_inverted_and_resized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.png");
        let mut img = image::GrayImage::from_pixel(56, 56, image::Luma([255]));
        for y in 10..46 {
            for x in 22..34 {
                img.put_pixel(x, y, image::Luma([0]));
            }
        }
        img.save(&path).unwrap();
        let px = load_image(&path, 28, 28).unwrap();
        assert_eq!(px.len(), 784);
        assert!(px[0] < 0.01, "background becomes black");
        assert!(px[14 * 28 + 14] > 0.9, "the stroke becomes white");
        let rgb = dir.path().join("c.png");
        image::RgbImage::from_pixel(8, 4, image::Rgb([255, 0, 51]))
            .save(&rgb)
            .unwrap();
        let px = load_image_as(&rgb, (3, 2, 4)).unwrap();
        assert_eq!(px.len(), 24);
        assert!((px[0] - 1.0).abs() < 1e-6 && px[8].abs() < 1e-6 && (px[16] - 0.2).abs() < 1e-6);
        assert_eq!(load_image_as(&rgb, (1, 3, 3)).unwrap().len(), 9);
        assert!(load_image_as(&rgb, (2, 3, 3)).is_err());
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        assert!(load_image(&bad, 28, 28).is_err());
    }
}
