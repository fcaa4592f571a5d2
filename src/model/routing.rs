//! Squash non-linearity and dynamic routing by agreement.

use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Epsilon inside the square root of [`squash`].
pub const SQUASH_EPS: f32 = 1e-6;

/// Squashes vectors along the last dimension:
/// `(|s|^2 / (1 + |s|^2)) * s / sqrt(|s|^2 + 1e-6)`.
///
/// # Shapes
/// - `s`: `[..., K]` -> `[..., K]`
pub fn squash<const R: usize>(s: Tensor<R>) -> Tensor<R> {
    let sq = s.clone().square().sum_dim(R - 1);
    let scale = sq.clone() / (sq.clone() + 1.0) / (sq + SQUASH_EPS).sqrt();
    s * scale
}

/// What dynamic routing produces.
#[derive(Debug, Clone)]
pub struct RoutingOutput {
    /// Class capsules `v`.
    ///
    /// # Shapes
    /// `[B, J, E]`
    pub class_caps: Tensor<3>,
    /// Coupling coefficients at the start of each iteration, if requested.
    ///
    /// # Shapes
    /// `R` tensors of `[B, J, N]` (softmax over J).
    pub coupling: Vec<Tensor<3>>,
}

/// Dynamic routing by agreement over `iters` iterations.
///
/// Logits start at 0; each iteration computes `c = softmax_J(b)`,
/// `s_j = sum_i c_ij u_hat_j|i + beta_j`, `v_j = squash(s_j)`, and, except in the last
/// iteration, `b_ij += u_hat_j|i . v_j`. Only the last iteration uses the tracked votes; the
/// earlier ones use a detached copy, so the votes get gradient only through the last iteration
/// while `beta` gets it through all of them.
///
/// # Shapes
/// - `votes`: `[B, J, N, E]` (u_hat, class-major so both sums are batched matmuls over N)
/// - `beta`: `[J, E]`
pub fn route(votes: Tensor<4>, beta: Tensor<2>, iters: usize, keep_coupling: bool) -> RoutingOutput {
    let [b, j, n, e] = votes.dims();
    let detached = votes.clone().detach();
    let beta = beta.reshape([1, j, e]);
    let mut logits: Tensor<3> = Tensor::zeros([b, j, n], &votes.device());
    let mut coupling = Vec::new();
    let iters = iters.max(1);
    let mut class_caps = None;
    for it in 0..iters {
        let last = it + 1 == iters;
        let c = softmax(logits.clone(), 1);
        if keep_coupling {
            coupling.push(c.clone());
        }
        let u = if last { votes.clone() } else { detached.clone() };
        // [B, J, 1, N] @ [B, J, N, E] -> [B, J, 1, E]
        let s = c.unsqueeze_dim::<4>(2).matmul(u.clone()).reshape([b, j, e]) + beta.clone();
        let v = squash(s);
        if !last {
            // [B, J, N, E] @ [B, J, E, 1] -> [B, J, N, 1]
            let agreement = u.matmul(v.clone().unsqueeze_dim::<4>(3)).reshape([b, j, n]);
            logits = logits + agreement;
        }
        class_caps = Some(v);
    }
    RoutingOutput {
        class_caps: class_caps.unwrap_or_else(|| Tensor::zeros([b, j, e], &votes.device())),
        coupling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn squash_matches_hand_computed_values() {
        // |s|^2 = 25 -> scale = 25/26 / sqrt(25 + 1e-6)
        let s = Tensor::<2>::from_floats([[3.0, 4.0], [0.0, 0.0]], &dev());
        let v = squash(s).into_data().try_into_vec_as::<f32>().unwrap();
        let k = 25.0f32 / 26.0 / (25.0f32 + 1e-6).sqrt();
        assert!((v[0] - 3.0 * k).abs() < 1e-6, "{v:?}");
        assert!((v[1] - 4.0 * k).abs() < 1e-6, "{v:?}");
        assert_eq!(&v[2..], &[0.0, 0.0]);
    }

    #[test]
    fn squash_keeps_lengths_below_one() {
        let s = Tensor::<2>::from_floats([[100.0, 0.0], [0.1, 0.0]], &dev());
        let v = squash(s).into_data().try_into_vec_as::<f32>().unwrap();
        assert!(v[0] < 1.0 && v[0] > 0.999);
        // short vectors shrink quadratically: |v| = 0.01/1.01 / ~0.1 * 0.1
        assert!((v[2] - 0.01 / 1.01).abs() < 1e-4, "{v:?}");
    }

    #[test]
    fn coupling_coefficients_sum_to_one_per_capsule() {
        let votes = Tensor::<4>::random([2, 3, 5, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &dev());
        let beta = Tensor::<2>::zeros([3, 4], &dev());
        let out = route(votes, beta, 3, true);
        assert_eq!(out.coupling.len(), 3);
        for c in out.coupling {
            let sums = c.sum_dim(1).into_data().try_into_vec_as::<f32>().unwrap();
            assert_eq!(sums.len(), 2 * 5);
            for s in sums {
                assert!((s - 1.0).abs() < 1e-5, "sum {s}");
            }
        }
    }

    #[test]
    fn agreement_raises_the_agreeing_class_logit() {
        // All three capsules vote (1, 0) for class 0. For class 1, capsule 0 votes (-1, 0)
        // against the consensus of the others (1, 0). Capsule 0 must move its coupling to
        // class 0, more than capsule 1, which agrees with both classes.
        let d = dev();
        // votes [B=1, J=2, N=3, E=2]
        let votes = Tensor::<4>::from_floats(
            [[
                [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
                [[-1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
            ]],
            &d,
        );
        let beta = Tensor::<2>::zeros([2, 2], &d);
        let out = route(votes, beta, 2, true);
        let first = out.coupling[0]
            .clone()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let last = out.coupling[1]
            .clone()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        // layout [B, J, N]: index j * 3 + n
        assert!((first[0] - 0.5).abs() < 1e-6);
        // hand-computed: |v0| = 2.25/3.25, |v1| = 0.25/1.25, c = sigmoid(|v0| + |v1|)
        let expected = 1.0 / (1.0 + (-(2.25f32 / 3.25 + 0.2)).exp());
        assert!((last[0] - expected).abs() < 1e-4, "{} vs {expected}", last[0]);
        assert!(last[0] > last[1], "{last:?}");
    }
}
