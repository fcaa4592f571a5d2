//! How a dense model is pruned to a sparsity: the one choice the CLI (`prune --method`,
//! `sweep --method`) and the app's slider share.

use burn::prelude::*;

use super::capsules::{capsule_importance, prune_capsules};
use super::channels::prune_channels;
use super::{apply_masks, magnitude_masks};
use crate::model::CapsNet;

/// How weights are chosen for removal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum PruneMethod {
    /// Exact global sparsity by weight magnitude (unstructured).
    #[default]
    Magnitude,
    /// Remove the least important primary capsules, whole types first (structured); the
    /// sparsity is the fraction of capsules removed.
    Capsules,
}

impl PruneMethod {
    /// Label in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Magnitude => "weights (magnitude)",
            Self::Capsules => "capsules (structured)",
        }
    }

    /// Name on the command line and in `sweep.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Magnitude => "magnitude",
            Self::Capsules => "capsules",
        }
    }
}

impl std::str::FromStr for PruneMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "magnitude" => Ok(Self::Magnitude),
            "capsules" => Ok(Self::Capsules),
            _ => Err(format!(
                "unknown pruning method '{s}' (expected magnitude or capsules)"
            )),
        }
    }
}

/// Prunes a dense model with `method` at `sparsity`, then the fraction `conv1` of conv1's
/// channels (0: none). Capsule pruning ranks capsules on `images` (called only then).
///
/// # Shapes
/// - `images()`: `[N, C, H, W]`
pub fn prune_to(
    model: CapsNet,
    (method, sparsity, conv1): (PruneMethod, f64, f64),
    images: impl FnOnce() -> Tensor<4>,
    device: &Device,
) -> CapsNet {
    let pruned = match method {
        PruneMethod::Magnitude => {
            let masks = magnitude_masks(&model, sparsity);
            apply_masks(model, &masks.to_device(device))
        }
        PruneMethod::Capsules => {
            let importance = capsule_importance(&model, images());
            prune_capsules(model, &importance, sparsity)
        }
    };
    if conv1 > 0.0 {
        prune_channels(pruned, conv1)
    } else {
        pruned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for m in [PruneMethod::Magnitude, PruneMethod::Capsules] {
            assert_eq!(m.name().parse::<PruneMethod>(), Ok(m));
        }
        assert!("slices".parse::<PruneMethod>().is_err());
    }
}
