//! Training-time augmentation on the host, while a batch is assembled: random shifts of
//! digits (Sabour et al. shift MNIST by up to 2 pixels) and, for colour images, a random
//! crop of the zero-padded image with a horizontal flip. Each batch draws from its own
//! seed, so a resumed run sees the same images as an uninterrupted one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// How training images are varied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Augment {
    /// What fits the data, decided when the data is loaded ([`Augment::resolve`]): crop
    /// and flip for colour images, nothing for grey ones.
    #[default]
    Auto,
    /// Images as they are.
    None,
    /// Shift by up to `max` pixels in x and y, filling with zeros.
    Shift {
        /// Largest shift in pixels.
        max: usize,
    },
    /// Pad by `pad` pixels of zeros, crop back to the original size at a random offset,
    /// and flip horizontally with probability one half.
    CropFlip {
        /// Padding in pixels.
        pad: usize,
    },
}

impl Augment {
    /// The augmentation used for images with `channels` channels: `Auto` becomes
    /// [`Augment::CROP4_FLIP`] for colour and [`Augment::None`] for grey images (digits
    /// are not flipped, and their shift is left to `--augment shift` so that short runs
    /// compare with the published one-epoch numbers); other choices stay as they are.
    pub fn resolve(self, channels: usize) -> Augment {
        match self {
            Augment::Auto if channels > 1 => Augment::CROP4_FLIP,
            Augment::Auto => Augment::None,
            other => other,
        }
    }

    /// Sabour et al.'s shift of digits by up to 2 pixels.
    pub const SHIFT2: Augment = Augment::Shift { max: 2 };
    /// The usual CIFAR augmentation: 4 pixels of padding, random crop and flip.
    pub const CROP4_FLIP: Augment = Augment::CropFlip { pad: 4 };
}

impl fmt::Display for Augment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Augment::Auto => f.write_str("auto"),
            Augment::None => f.write_str("none"),
            Augment::Shift { max } => write!(f, "shift{max}"),
            Augment::CropFlip { pad } => write!(f, "crop{pad}-flip"),
        }
    }
}

/// An unknown augmentation name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown augmentation '{0}' (expected auto, none, shift (2 pixels) or crop-flip (4 pixels of padding))"
)]
pub struct UnknownAugment(pub String);

impl FromStr for Augment {
    type Err = UnknownAugment;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Augment::Auto),
            "none" | "off" => Ok(Augment::None),
            "shift" | "shift2" => Ok(Augment::SHIFT2),
            "crop-flip" | "crop4-flip" => Ok(Augment::CROP4_FLIP),
            _ => Err(UnknownAugment(s.to_string())),
        }
    }
}

/// The seed of batch `batch` of epoch `epoch` of a run seeded with `seed`.
pub fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    let mut r = Rng::new(seed ^ ((epoch as u64) << 32) ^ batch as u64 ^ 0xA5A5_5A5A);
    r.next_u64()
}

/// Appends one augmented image, scaled to [0, 1], to `out`.
///
/// # Shapes
/// - `pixels`: `channels * height * width` bytes, channel-first
pub fn push_augmented(
    pixels: &[u8],
    (channels, height, width): (usize, usize, usize),
    augment: Augment,
    rng: &mut Rng,
    out: &mut Vec<f32>,
) {
    let (max, flip) = match augment {
        Augment::None | Augment::Auto => {
            out.extend(pixels.iter().map(|&p| p as f32 / 255.0));
            return;
        }
        Augment::Shift { max } => (max, false),
        Augment::CropFlip { pad } => (pad, true),
    };
    let span = 2 * max + 1;
    let dy = rng.below(span) as isize - max as isize;
    let dx = rng.below(span) as isize - max as isize;
    let mirror = flip && rng.below(2) == 1;
    for c in 0..channels {
        let plane = &pixels[c * height * width..(c + 1) * height * width];
        for y in 0..height as isize {
            for x in 0..width as isize {
                // output (y, x) shows input (y - dy, x' - dx), x' mirrored when flipping
                let xs = if mirror { width as isize - 1 - x } else { x };
                let (sy, sx) = (y - dy, xs - dx);
                let inside = (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx);
                let v = if inside {
                    plane[sy as usize * width + sx as usize] as f32 / 255.0
                } else {
                    0.0
                };
                out.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_the_image_and_fill_with_zeros() {
        // a 5x5 image with one lit pixel in the middle
        let mut px = vec![0u8; 25];
        px[12] = 255;
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let mut out = Vec::new();
            push_augmented(&px, (1, 5, 5), Augment::SHIFT2, &mut rng, &mut out);
            assert_eq!(out.len(), 25);
            assert_eq!(
                out.iter().filter(|v| **v == 1.0).count(),
                1,
                "the pixel stays in view"
            );
            seen.insert(out.iter().position(|v| *v == 1.0).unwrap());
        }
        assert_eq!(seen.len(), 25, "every shift in [-2, 2]^2 occurs");
        let mut out = Vec::new();
        push_augmented(&px, (1, 5, 5), Augment::None, &mut rng, &mut out);
        assert_eq!(out[12], 1.0);
    }

    #[test]
    fn crop_flip_mirrors_half_the_time_and_keeps_channels_apart() {
        // 2 channels of 1x4: [0, 0, 0, 255] and [255, 0, 0, 0]
        let px = [0u8, 0, 0, 255, 255, 0, 0, 0];
        let mut rng = Rng::new(3);
        let (mut flipped, mut total) = (0, 0);
        for _ in 0..400 {
            let mut out = Vec::new();
            push_augmented(&px, (2, 1, 4), Augment::CropFlip { pad: 0 }, &mut rng, &mut out);
            total += 1;
            if out[..4] == [1.0, 0.0, 0.0, 0.0] {
                flipped += 1;
                assert_eq!(out[4..], [0.0, 0.0, 0.0, 1.0]);
            } else {
                assert_eq!(out, [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
            }
        }
        assert!((150..250).contains(&flipped), "{flipped} of {total}");
    }

    #[test]
    fn names_parse_and_batch_seeds_differ() {
        assert_eq!("shift".parse::<Augment>().unwrap(), Augment::SHIFT2);
        assert_eq!("crop-flip".parse::<Augment>().unwrap(), Augment::CROP4_FLIP);
        assert!("rotate".parse::<Augment>().is_err());
        assert_ne!(batch_seed(1, 1, 0), batch_seed(1, 1, 1));
        assert_ne!(batch_seed(1, 1, 0), batch_seed(1, 2, 0));
        assert_eq!(batch_seed(7, 3, 4), batch_seed(7, 3, 4));
    }
}
