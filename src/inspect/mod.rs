//! Inspection of single images (what the canvas and `sparsecaps inspect` show).

pub mod digit;
pub mod image;

pub use digit::{CapsuleVote, DigitInspection, inspect_digit};
pub use image::{ImageError, load_image};
