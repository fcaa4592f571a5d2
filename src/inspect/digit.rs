//! Inspection of one image: prediction, class-capsule lengths, routing, the capsules that
//! vote most for the winner, primary activations and the reconstruction.

use burn::prelude::*;
use serde::Serialize;

use crate::model::{CapsNet, HostTensor};

/// A primary capsule's say in the prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapsuleVote {
    /// Index in the dense network (`t * G * G + y * G + x`).
    pub capsule: usize,
    /// Capsule type t.
    pub capsule_type: usize,
    /// Grid row y.
    pub y: usize,
    /// Grid column x.
    pub x: usize,
    /// Coupling coefficient to the predicted class in the last routing iteration.
    pub coupling: f32,
    /// Length of the capsule's activation.
    pub activation: f32,
}

/// Everything the app and `inspect` show about one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigitInspection {
    /// Predicted class (longest class capsule).
    pub prediction: usize,
    /// Class-capsule lengths, one per class.
    pub lengths: Vec<f32>,
    /// Capsules this network routes.
    pub capsules: usize,
    /// Capsules sorted by coupling to the predicted class (strongest first), at most `top`.
    pub top_capsules: Vec<CapsuleVote>,
    /// Activation length of each routed capsule.
    #[serde(skip)]
    pub activations: Vec<f32>,
    /// Dense index of each routed capsule (the same order as `activations`).
    #[serde(skip)]
    pub indices: Vec<usize>,
    /// Coupling coefficients per routing iteration, `[R][J][K]` flattened per iteration.
    #[serde(skip)]
    pub coupling: Vec<Vec<f32>>,
    /// Reconstruction from the winning capsule, `H * W * C` values in [0, 1].
    #[serde(skip)]
    pub reconstruction: Option<Vec<f32>>,
    /// The image inspected, `C * H * W` values in [0, 1] (the canvas draws fields on it).
    #[serde(skip)]
    pub input: Vec<f32>,
}

/// One image (`C * H * W` values of the model's input size) as a batch of one.
///
/// # Shapes
/// returns `[1, C, H, W]`
pub fn image_tensor(model: &CapsNet, pixels: &[f32], device: &Device) -> Tensor<4> {
    let c = &model.config;
    Tensor::from_data(
        TensorData::new(pixels.to_vec(), [1, c.in_channels, c.height, c.width]),
        device,
    )
}

/// Inspects one image (values in [0, 1], `C * H * W` of the model's input size).
pub fn inspect_digit(model: &CapsNet, pixels: &[f32], top: usize, device: &Device) -> DigitInspection {
    let (out, recon) = model.inspect(image_tensor(model, pixels, device));
    let lengths = HostTensor::from_tensor(out.lengths).values;
    let prediction = lengths
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let activations =
        HostTensor::from_tensor(out.primary.square().sum_dim(2).sqrt().flatten::<1>(0, 2)).values;
    let coupling: Vec<Vec<f32>> = out
        .coupling
        .into_iter()
        .map(|t| HostTensor::from_tensor(t).values)
        .collect();
    let k = activations.len();
    let cells = model.geometry().cells().max(1);
    let grid_w = model.geometry().grid_w.max(1);
    let indices = model.capsule_indices();
    let dense_indices = indices.clone();
    let mut top_capsules: Vec<CapsuleVote> = coupling
        .last()
        .map(|last| {
            (0..k)
                .map(|i| {
                    let capsule = indices[i];
                    CapsuleVote {
                        capsule,
                        capsule_type: capsule / cells,
                        y: (capsule % cells) / grid_w,
                        x: capsule % grid_w,
                        coupling: last[prediction * k + i],
                        activation: activations[i],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    top_capsules.sort_by(|a, b| b.coupling.total_cmp(&a.coupling).then(a.capsule.cmp(&b.capsule)));
    top_capsules.truncate(top);
    DigitInspection {
        prediction,
        lengths,
        capsules: k,
        top_capsules,
        activations,
        indices: dense_indices,
        coupling,
        reconstruction: recon.map(|r| HostTensor::from_tensor(r).values),
        input: pixels.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspection_of_a_test_digit_is_consistent() {
        let dev = Device::flex();
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 1, &dev).unwrap();
        let data = crate::data::Dataset::load(&crate::data::DataSource::Mnist).unwrap();
        let r = inspect_digit(&net, &data.test.image_f32(0), 5, &dev);
        assert_eq!(r.lengths.len(), 10);
        assert!(r.lengths[r.prediction] >= r.lengths.iter().cloned().fold(0.0, f32::max));
        assert_eq!(r.top_capsules.len(), 5);
        assert!(r.top_capsules.windows(2).all(|w| w[0].coupling >= w[1].coupling));
        assert_eq!(r.coupling.len(), net.config.routing_iters);
        assert_eq!(r.activations.len(), net.capsules());
        assert_eq!(r.reconstruction.map(|v| v.len()), Some(784));
    }
}
