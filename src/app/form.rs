//! The training form and what of it persists between runs.

use crate::device::DeviceChoice;
use crate::inspect::SliderMethod;
use crate::model::Preset;

use super::AppState;

/// Pruning choice of the training form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainChoice {
    /// No pruning.
    None,
    /// LOBSTER.
    Lobster,
    /// Gradual magnitude pruning.
    Gmp,
}

impl TrainChoice {
    /// Label in the UI.
    pub fn label(self) -> &'static str {
        match self {
            TrainChoice::None => "none",
            TrainChoice::Lobster => "LOBSTER",
            TrainChoice::Gmp => "gradual magnitude",
        }
    }
}

/// The training form (persisted between runs).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainForm {
    /// `mnist`, `fashion-mnist` or a folder.
    pub data: String,
    /// Model size.
    pub preset: Preset,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Training images to use (0: all).
    pub limit_train: usize,
    /// Pruning while training.
    pub prune: TrainChoice,
    /// LOBSTER lambda.
    pub lambda: f64,
    /// LOBSTER patience.
    pub pwe: usize,
    /// LOBSTER tolerance.
    pub twt: f64,
    /// GMP target sparsity.
    pub target: f64,
    /// Device.
    pub device: DeviceChoice,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self {
            data: "mnist".into(),
            preset: Preset::Tiny,
            epochs: 1,
            batch: Preset::Tiny.default_batch(),
            lr: 1e-3,
            limit_train: 10_000,
            prune: TrainChoice::None,
            lambda: 1e-4,
            pwe: 2,
            twt: 0.0,
            target: 0.9,
            device: DeviceChoice::Auto,
        }
    }
}

/// The persisted part of the training form (and the last model path).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedForm {
    data: String,
    preset: String,
    epochs: usize,
    batch: usize,
    lr: f64,
    limit_train: usize,
    prune: TrainChoice,
    lambda: f64,
    pwe: usize,
    twt: f64,
    target: f64,
    device: String,
    model_path: String,
    #[serde(default)]
    slider_method: SliderMethod,
}

/// Storage key of [`SavedForm`].
pub const STORAGE_KEY: &str = "sparsecaps-form";

impl AppState {
    /// What is kept between runs.
    pub fn saved_form(&self) -> SavedForm {
        let f = &self.train;
        SavedForm {
            data: f.data.clone(),
            preset: f.preset.name().into(),
            epochs: f.epochs,
            batch: f.batch,
            lr: f.lr,
            limit_train: f.limit_train,
            prune: f.prune,
            lambda: f.lambda,
            pwe: f.pwe,
            twt: f.twt,
            target: f.target,
            device: format!("{:?}", f.device).to_lowercase(),
            model_path: self.model_path.clone(),
            slider_method: self.slider_method,
        }
    }

    /// Restores what was kept (unknown names keep the defaults).
    pub fn restore_form(&mut self, s: SavedForm) {
        let f = &mut self.train;
        f.data = s.data;
        f.preset = s.preset.parse().unwrap_or(f.preset);
        f.epochs = s.epochs.max(1);
        f.batch = s.batch.max(1);
        f.lr = s.lr;
        f.limit_train = s.limit_train;
        f.prune = s.prune;
        f.lambda = s.lambda;
        f.pwe = s.pwe;
        f.twt = s.twt;
        f.target = s.target;
        f.device = s.device.parse().unwrap_or(f.device);
        self.model_path = s.model_path;
        self.slider_method = s.slider_method;
    }
}
