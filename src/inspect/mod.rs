//! Inspection of single images (what the canvas and `sparsecaps inspect` show) and the
//! worker thread that answers the canvas and the sparsity slider.

pub mod builtin;
pub mod digit;
pub mod image;
pub mod latency;
pub mod messages;
pub mod outbox;
pub mod preprocess;
pub mod summary;
pub mod worker;

pub use digit::{CapsuleVote, DigitInspection, inspect_digit};
pub use image::{ImageError, load_image, load_input};
pub use messages::{
    InspectCommand, InspectError, InspectEvent, KeepRequest, ModelSummary, PruneMethod, SliderResult,
};
pub use preprocess::mnist_style;
pub use worker::{HELD_OUT, Inspector, mnist_held_out};
