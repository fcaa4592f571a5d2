//! Margin loss and reconstruction loss.

use burn::prelude::*;
use burn::tensor::activation::relu;

/// Margin-loss parameters (m+, m-, lambda).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margins {
    /// Upper margin m+ (0.9).
    pub m_plus: f64,
    /// Lower margin m- (0.1).
    pub m_minus: f64,
    /// Down-weighting of absent classes (0.5).
    pub lambda: f64,
}

/// Margin loss, mean over the batch:
/// `sum_j T_j max(0, m+ - |v_j|)^2 + lambda (1 - T_j) max(0, |v_j| - m-)^2`.
///
/// # Shapes
/// - `lengths`: `[B, J]` class-capsule lengths
/// - `targets`: `[B, J]` one-hot labels
/// - returns `[1]`
pub fn margin_loss(lengths: Tensor<2>, targets: Tensor<2>, m: Margins) -> Tensor<1> {
    let present = relu(lengths.clone().neg() + m.m_plus).square();
    let absent = relu(lengths - m.m_minus).square();
    let per_class = targets.clone() * present + (targets.neg() + 1.0) * absent * m.lambda;
    per_class.sum_dim(1).mean()
}

/// Reconstruction loss `weight * sum_pixels (x - x_hat)^2`, mean over the batch.
///
/// # Shapes
/// - `images`: `[B, P]` flattened inputs in [0, 1]
/// - `recon`: `[B, P]` decoder outputs
/// - returns `[1]`
pub fn reconstruction_loss(images: Tensor<2>, recon: Tensor<2>, weight: f64) -> Tensor<1> {
    (images - recon).square().sum_dim(1).mean() * weight
}

/// One-hot encoding of labels as floats.
///
/// # Shapes
/// - `labels`: `[B]` -> `[B, classes]`
pub fn one_hot(labels: Tensor<1, Int>, classes: usize) -> Tensor<2> {
    labels.one_hot::<2>(classes).float()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Margins = Margins {
        m_plus: 0.9,
        m_minus: 0.1,
        lambda: 0.5,
    };

    #[test]
    fn margin_loss_matches_hand_computed_value() {
        let d = Device::flex();
        // sample 0, target class 0: (0.9-0.5)^2 + 0.5*(0.3-0.1)^2 + 0 = 0.16 + 0.02
        // sample 1, target class 2: 0 + 0.5*(0.95-0.1)^2 + (0.9-0.2)^2 = 0.36125 + 0.49
        let lengths = Tensor::<2>::from_floats([[0.5, 0.3, 0.05], [0.0, 0.95, 0.2]], &d);
        let labels = Tensor::<1, Int>::from_ints([0, 2], &d);
        let loss = margin_loss(lengths, one_hot(labels, 3), M).into_scalar::<f32>();
        let expected = ((0.16 + 0.02) + (0.36125 + 0.49)) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn margin_loss_is_zero_beyond_the_margins() {
        let d = Device::flex();
        let lengths = Tensor::<2>::from_floats([[0.95, 0.05]], &d);
        let labels = Tensor::<1, Int>::from_ints([0], &d);
        assert_eq!(
            margin_loss(lengths, one_hot(labels, 2), M).into_scalar::<f32>(),
            0.0
        );
    }

    #[test]
    fn reconstruction_loss_sums_pixels_and_averages_samples() {
        let d = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 0.0]], &d);
        let r = Tensor::<2>::from_floats([[0.0, 0.0], [0.5, 0.5]], &d);
        let loss = reconstruction_loss(x, r, 0.0005).into_scalar::<f32>();
        assert!((loss - 0.0005 * (1.0 + 0.5) / 2.0).abs() < 1e-9);
    }
}
