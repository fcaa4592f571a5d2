//! Masks on the prunable weights (conv1, primary and class-capsule W): a masked weight is
//! exactly 0 in every forward pass and stays 0 through optimiser steps, because the mask is
//! re-applied after each step.

use burn::prelude::*;

pub use crate::model::PRUNABLE;
use crate::model::{CapsNet, HostTensor};

/// The prunable weights read back to the host, in [`PRUNABLE`] order and the network's own
/// layouts (`digit` is `[N, D, J * E]`).
pub fn prunable_weights(model: &CapsNet) -> [HostTensor; 3] {
    [
        HostTensor::from_tensor(model.conv1_weight.val()),
        HostTensor::from_tensor(model.primary_weight.val()),
        HostTensor::from_tensor(model.digit_weight.val()),
    ]
}

/// 0/1 masks of the prunable weights, in the network's own layouts
/// (`digit` is `[N, D, J * E]` like `CapsNet::digit_weight`).
#[derive(Debug, Clone, PartialEq)]
pub struct Masks {
    /// Mask of conv1's filters.
    pub conv1: HostTensor,
    /// Mask of the primary filters.
    pub primary: HostTensor,
    /// Mask of W.
    pub digit: HostTensor,
}

impl Masks {
    /// Masks that keep every non-zero weight of `model` (and prune the zeros).
    pub fn from_nonzero(model: &CapsNet) -> Self {
        let nz = |t: HostTensor| HostTensor {
            values: t.values.iter().map(|v| f32::from(*v != 0.0)).collect(),
            shape: t.shape,
        };
        let [conv1, primary, digit] = prunable_weights(model).map(nz);
        Self {
            conv1,
            primary,
            digit,
        }
    }

    /// Both masks at once: a weight is kept only where both keep it.
    pub fn and(self, other: &Masks) -> Masks {
        let both = |a: HostTensor, b: &HostTensor| HostTensor {
            values: a.values.iter().zip(&b.values).map(|(x, y)| x * y).collect(),
            shape: a.shape,
        };
        Masks {
            conv1: both(self.conv1, &other.conv1),
            primary: both(self.primary, &other.primary),
            digit: both(self.digit, &other.digit),
        }
    }

    /// The three masks in [`PRUNABLE`] order.
    pub fn tensors(&self) -> [&HostTensor; 3] {
        [&self.conv1, &self.primary, &self.digit]
    }

    /// Fraction of weights pruned.
    pub fn sparsity(&self) -> f64 {
        let (mut zeros, mut total) = (0usize, 0usize);
        for m in self.tensors() {
            zeros += m.values.iter().filter(|v| **v == 0.0).count();
            total += m.values.len();
        }
        zeros as f64 / total.max(1) as f64
    }

    /// Uploads the masks to a device.
    pub fn to_device(&self, device: &Device) -> DeviceMasks {
        DeviceMasks {
            conv1: self.conv1.to_tensor(device),
            primary: self.primary.to_tensor(device),
            digit: self.digit.to_tensor(device),
        }
    }
}

/// Masks on a device, ready to multiply weights with.
#[derive(Debug, Clone)]
pub struct DeviceMasks {
    /// `[C1, C, k, k]`
    pub conv1: Tensor<4>,
    /// `[T * D, C1, k, k]`
    pub primary: Tensor<4>,
    /// `[N, D, J * E]`
    pub digit: Tensor<3>,
}

/// Multiplies the prunable weights by their masks (parameter ids are kept, so optimiser
/// state stays attached). Call it after every optimiser step.
pub fn apply_masks(mut model: CapsNet, masks: &DeviceMasks) -> CapsNet {
    model.conv1_weight = model.conv1_weight.map(|w| masked(w, masks.conv1.clone()));
    model.primary_weight = model.primary_weight.map(|w| masked(w, masks.primary.clone()));
    model.digit_weight = model.digit_weight.map(|w| masked(w, masks.digit.clone()));
    model
}

/// `w * mask` as a fresh leaf that tracks gradients if `w` did.
fn masked<const R: usize>(w: Tensor<R>, mask: Tensor<R>) -> Tensor<R> {
    let tracked = w.is_require_grad();
    let out = (w * mask).detach();
    if tracked { out.require_grad() } else { out }
}
