//! How a dense model is pruned to a sparsity: the one choice the CLI (`prune --method`,
//! `sweep --method`) and the app's slider share.

use burn::prelude::*;

use super::backbone::{BackbonePruneError, adapt_bn, choose_kept, group_importance, narrow, uniform_counts};
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
    /// Remove backbone channels (structured, backbone presets only); the sparsity is the
    /// fraction of the backbone's FLOPs removed. The app's slider keeps the same share of
    /// each group by filter L1 norm and adapts BatchNorm; `prune` and `sweep` search
    /// per-group shares (EagleEye).
    Backbone,
}

impl PruneMethod {
    /// Label in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Magnitude => "weights (magnitude)",
            Self::Capsules => "capsules (structured)",
            Self::Backbone => "backbone channels (FLOPs)",
        }
    }

    /// Name on the command line and in `sweep.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Magnitude => "magnitude",
            Self::Capsules => "capsules",
            Self::Backbone => "backbone",
        }
    }
}

impl std::str::FromStr for PruneMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "magnitude" => Ok(Self::Magnitude),
            "capsules" => Ok(Self::Capsules),
            "backbone" => Ok(Self::Backbone),
            _ => Err(format!(
                "unknown pruning method '{s}' (expected magnitude, capsules or backbone)"
            )),
        }
    }
}

/// Prunes a dense model with `method` at `sparsity`, then the fraction `conv1` of conv1's
/// channels (0: none). Capsule pruning ranks capsules on `images`, backbone pruning adapts
/// BatchNorm on them (called only then). Backbone pruning fails on a model without one.
///
/// # Shapes
/// - `images()`: `[N, C, H, W]`
pub fn prune_to(
    model: CapsNet,
    (method, sparsity, conv1): (PruneMethod, f64, f64),
    images: impl FnOnce() -> Tensor<4>,
    device: &Device,
) -> Result<CapsNet, BackbonePruneError> {
    let pruned = match method {
        PruneMethod::Magnitude => {
            let masks = magnitude_masks(&model, sparsity);
            apply_masks(model, &masks.to_device(device))
        }
        PruneMethod::Capsules => {
            let importance = capsule_importance(&model, images());
            prune_capsules(model, &importance, sparsity)
        }
        PruneMethod::Backbone => {
            let counts = uniform_counts(&model.config, 1.0 - sparsity)?;
            if model.config.backbone_plan().is_some_and(|p| p.groups() == counts) {
                // nothing to remove: the model as it is, BatchNorm statistics included
                return Ok(model);
            }
            let kept = choose_kept(&group_importance(&model)?, &counts);
            let narrowed = narrow(&model, &kept)?;
            let x = images();
            let n = x.dims()[0];
            let batches = (0..n).step_by(64).map(|s| x.clone().slice(s..(s + 64).min(n)));
            adapt_bn(narrowed, batches)
        }
    };
    Ok(if conv1 > 0.0 {
        prune_channels(pruned, conv1)
    } else {
        pruned
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for m in [
            PruneMethod::Magnitude,
            PruneMethod::Capsules,
            PruneMethod::Backbone,
        ] {
            assert_eq!(m.name().parse::<PruneMethod>(), Ok(m));
        }
        assert!("slices".parse::<PruneMethod>().is_err());
    }
}
