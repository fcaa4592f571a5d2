//! What the UI and the inspection worker say to each other: plain data only.

use std::path::PathBuf;

use crate::data::{DataSource, Split};
use crate::export::ModelInfo;
use crate::model::CapsNet;

use super::digit::DigitInspection;

pub use crate::prune::PruneMethod;

/// "Keep": commit the slider's mask and fine-tune under it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepRequest {
    /// Dataset whose training images the model is fine-tuned on.
    pub data: DataSource,
    /// Fine-tune on the first this many training images.
    pub images: usize,
    /// Epochs over them.
    pub epochs: usize,
    /// The slider position being kept (requested sparsity, method), as the last slider
    /// result on screen reports it. A Keep that finds the worker at another position (a
    /// model loaded in between put its slider back to 0) is refused.
    pub pruning: (f64, PruneMethod),
    /// The model on screen ([`ModelSummary::model_id`]); a Keep that finds another model
    /// in use (a load or reset queued before it) is refused.
    pub model_id: u64,
}

/// Whether two slider positions prune the same: equal, or both at 0 (where the method
/// prunes nothing).
pub fn same_pruning(a: (f64, PruneMethod), b: (f64, PruneMethod)) -> bool {
    a.0 == b.0 && (a.0 == 0.0 || a.1 == b.1)
}

/// Requests to the inspection worker.
#[derive(Debug, Clone)]
pub enum InspectCommand {
    /// Use this (dense) model from now on; the slider returns to 0.
    SetModel(Box<CapsNet>),
    /// Held-out digits to measure the slider's accuracy on (and to rank capsules by).
    SetHeldOut(Box<Split>),
    /// Read MNIST's test digits here, off the UI thread: the last [`HELD_OUT`] become the
    /// held-out digits (as `SetHeldOut`), the others what `PickTestImage` picks from for a
    /// model that takes digits. Answers nothing, or `Failed` if they cannot be read.
    ///
    /// [`HELD_OUT`]: super::HELD_OUT
    LoadMnistDigits,
    /// Inspect one 28x28 (model-sized) image.
    Inspect(Vec<f32>),
    /// Prune the model to this sparsity (non-destructively) and evaluate it.
    SetSparsity {
        /// Fraction of weights (magnitude) or of capsules (capsules) to remove.
        sparsity: f64,
        /// How to prune.
        method: PruneMethod,
    },
    /// Make the slider's pruning permanent and fine-tune under its mask.
    Keep(KeepRequest),
    /// Return to the model as it was loaded (dense), undoing every "Keep".
    Reset,
    /// Reconstruct the last inspected digit with the winning capsule's dimensions moved by
    /// these offsets.
    Perturb(Vec<f32>),
    /// Load a model file (dense or compact) and use it.
    Load(PathBuf),
    /// Decode a model file built into the binary and use it.
    LoadBytes {
        /// Name for messages.
        name: &'static str,
        /// The file's bytes.
        bytes: &'static [u8],
    },
    /// Export the current (pruned) model, compacted, to a file and time dense vs compact.
    Export {
        /// The file to write.
        path: PathBuf,
        /// The model on screen ([`ModelSummary::model_id`]) and the slider position of the
        /// result on screen: an export that finds the worker at another model or position
        /// (a checkpoint or load queued before it) is refused rather than writing it.
        model_id: u64,
        /// See `model_id`.
        pruning: (f64, PruneMethod),
    },
    /// Forget the last inspected image: no more re-inspection after pruning, and no
    /// perturbed reconstructions of it (the canvas was cleared); answered by `Forgotten`.
    Forget,
    /// Read an image file as the input of a model taking `input` images (for a model that
    /// takes drawn digits, like a drawing: grey, a light background inverted), answer with
    /// `ImageLoaded` and inspect it. Decoding happens here, not on the UI thread.
    LoadImage {
        /// The image file (PNG or JPEG).
        path: PathBuf,
        /// (channels, height, width) of the model's input.
        input: (usize, usize, usize),
        /// Whether the model takes drawn digits.
        digits: bool,
    },
    /// Pick test image `n` (modulo their count), answer with `Picked`, and inspect it: one
    /// of MNIST's test digits (`LoadMnistDigits`) for a model they fit, else of the model's
    /// own dataset.
    PickTestImage(usize),
    /// End the thread.
    Shutdown,
}

/// The result of a slider move.
#[derive(Debug, Clone, PartialEq)]
pub struct SliderResult {
    /// Global weight sparsity reached (backbone method: the fraction of the dense
    /// backbone's FLOPs removed).
    pub sparsity: f64,
    /// How it was pruned.
    pub method: PruneMethod,
    /// The slider position asked for (`SetSparsity`'s sparsity); what "Keep" keeps.
    pub requested: f64,
    /// Accuracy on the held-out images evaluated so far (None without held-out images).
    pub accuracy: Option<f64>,
    /// Held-out images `accuracy` is on: the first [`super::worker::QUICK_EVAL`] in a
    /// move's first answer, all of them in the refined answer that follows.
    pub evaluated: usize,
    /// Held-out images in all.
    pub held_out: usize,
    /// Alive map (dense capsule indices).
    pub alive: Vec<bool>,
    /// Alive capsules K.
    pub alive_capsules: usize,
    /// Types with an alive capsule.
    pub alive_types: usize,
    /// Time from request to result, ms.
    pub elapsed_ms: f64,
}

/// Test images of a model's own dataset (from its info) the worker loads for the app; a
/// pick's index is taken modulo this.
pub const OWN_TEST_IMAGES: usize = 1_000;

/// The input of MNIST digits (what the drawing canvas makes): (channels, height, width).
pub const DIGIT_INPUT: (usize, usize, usize) = (1, 28, 28);

/// Whether a model taking `input` images, trained on `dataset` (as its file names it),
/// reads drawn digits: MNIST-sized grey input and MNIST (or no dataset named). Such a
/// model gets the drawing canvas, MNIST's test digits and images read as drawn digits
/// (centred as MNIST's are); any other model (Fashion-MNIST's too) gets its own test
/// images and image files as they are.
pub fn draws_digits(input: (usize, usize, usize), dataset: Option<&str>) -> bool {
    input == DIGIT_INPUT && dataset.is_none_or(|d| d == "mnist")
}

/// What the capsule map needs to know about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Capsule types T.
    pub types: usize,
    /// Grid height.
    pub grid_h: usize,
    /// Grid width.
    pub grid_w: usize,
    /// Input pixels a primary capsule sees along each side (its receptive field).
    pub receptive_field: usize,
    /// Input pixels between neighbouring capsules' receptive fields.
    pub field_stride: usize,
    /// Input pixels the first capsule's field starts before the image (a backbone's padding).
    pub field_offset: usize,
    /// Alive map (dense indices).
    pub alive: Vec<bool>,
    /// |W_i| per dense capsule index (0 for removed capsules).
    pub w_norms: Vec<f32>,
    /// Facts stored with the model.
    pub info: ModelInfo,
    /// The input it takes: (channels, height, width).
    pub input: (usize, usize, usize),
    /// Whether it has a CNN backbone (whose channels the slider can prune).
    pub backbone: bool,
    /// Dimensions of a class capsule (the reconstruction's dimension sliders).
    pub class_dim: usize,
    /// Which model this is to the inspection worker: a new number for each model it loads
    /// or keeps (0 before the worker numbers it). Keep and Export name it, so that they act
    /// on the model on screen.
    pub model_id: u64,
}

impl ModelSummary {
    /// Whether the model reads drawn digits: see [`draws_digits`].
    pub fn takes_digits(&self) -> bool {
        draws_digits(self.input, self.info.dataset.as_deref())
    }

    /// The input `model` takes, (channels, height, width); MNIST digits' without a model.
    pub fn input_of(model: Option<&ModelSummary>) -> (usize, usize, usize) {
        model.map_or(DIGIT_INPUT, |m| m.input)
    }

    /// The name of class `j`: from the model's info when it has names, else the number.
    pub fn class_name(&self, j: usize) -> String {
        self.info.classes.get(j).cloned().unwrap_or_else(|| j.to_string())
    }
}

/// Answers of the inspection worker.
#[derive(Debug, Clone)]
pub enum InspectEvent {
    /// A digit was inspected (with the current pruning).
    Inspected(Box<DigitInspection>),
    /// The slider's pruning is applied. A move is answered twice when it has more held-out
    /// images than [`super::worker::QUICK_EVAL`]: first with the accuracy on those, then,
    /// once no command waits (and unless a newer move or model replaced it), on all of them.
    Pruned(SliderResult),
    /// A perturbed reconstruction.
    Reconstruction(Vec<f32>),
    /// A model is in use (after `SetModel`, `Load` or `Reset`); the slider is at 0.
    ModelReady(Box<ModelSummary>),
    /// Fine-tuning after "Keep" made progress.
    Tuning {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// "Keep" finished: this is the fine-tuned model; a `Pruned` with its accuracy follows.
    Kept(Box<ModelSummary>),
    /// "Keep" was cancelled: the slider's pruning stays as it was, not fine-tuned.
    KeepCancelled,
    /// "Keep" failed (no model, a position that changed before it started, its dataset, a
    /// panic): the slider's pruning stays as it was, not fine-tuned.
    KeepFailed(InspectError),
    /// A test image of the model's dataset was picked (`PickTestImage`); an `Inspected`
    /// follows.
    Picked {
        /// Its pixels, channel-first, in [0, 1].
        pixels: Vec<f32>,
        /// Its label.
        label: usize,
    },
    /// An image file was read (`LoadImage`): its pixels, channel-first, in [0, 1]; an
    /// `Inspected` follows.
    ImageLoaded(Vec<f32>),
    /// The current model was exported.
    Exported {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
        /// Batch-32 inference of the dense (masked) model, ms.
        dense_ms: f64,
        /// Batch-32 inference of the compact model, ms.
        compact_ms: f64,
    },
    /// The last inspected image is forgotten (after `Forget`, or because a new model does
    /// not take it): views built from it should go.
    Forgotten,
    /// Something failed.
    Failed(InspectError),
}

/// Why the inspection worker could not do what it was asked, as it crosses to the UI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Nothing to work on yet.
    #[error("no model loaded")]
    NoModel,
    /// The image does not have the model's input size.
    #[error("the image has {got} values, the model takes {want}")]
    ImageSize {
        /// Values given.
        got: usize,
        /// Values the model takes (channels x height x width).
        want: usize,
    },
    /// An image file could not be read as the model's input.
    #[error("{0}")]
    Image(String),
    /// No test images of the model's own dataset to pick from.
    #[error("no test images for this model: {0}")]
    NoTestImages(String),
    /// A model file could not be read or is not a valid model.
    #[error("{0}")]
    Load(String),
    /// The model could not be compacted or written.
    #[error("{0}")]
    Export(String),
    /// The slider cannot prune this model this way.
    #[error("{0}")]
    Prune(String),
    /// "Keep"'s dataset could not be read or does not fit the model.
    #[error("dataset {data}: {reason}")]
    Dataset {
        /// The dataset asked for.
        data: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A bug: the worker panicked; it keeps serving.
    #[error("{0}")]
    Panicked(String),
}

impl InspectError {
    /// Whether the error is about the image being inspected (shown by the canvas) rather
    /// than the model (shown by the pruning panel).
    pub fn about_the_image(&self) -> bool {
        matches!(
            self,
            Self::ImageSize { .. } | Self::NoTestImages(_) | Self::Image(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mnist_models_read_drawn_digits() {
        assert!(draws_digits(DIGIT_INPUT, Some("mnist")));
        assert!(draws_digits(DIGIT_INPUT, None), "a file that names no dataset");
        assert!(
            !draws_digits(DIGIT_INPUT, Some("fashion-mnist")),
            "same size, not digits"
        );
        assert!(!draws_digits((3, 32, 32), Some("cifar10")));
        assert!(!draws_digits((1, 32, 32), Some("mnist")));
    }
}
