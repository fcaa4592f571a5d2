//! LOBSTER (loss-based sensitivity regularisation, arXiv 2011.09905) and the threshold
//! search that turns its small weights into pruned ones.

use burn::prelude::*;
use burn::tensor::activation::relu;

/// The LOBSTER update of one weight tensor after an optimiser step:
/// `w <- w - lambda * w * max(0, 1 - |g|)`, with `g` the loss gradient. Weights the loss
/// is insensitive to (small |g|) decay towards zero; sensitive ones are left alone.
///
/// # Shapes
/// - `w`, `grad`: the same shape
pub fn lobster_update<const R: usize>(w: Tensor<R>, grad: Tensor<R>, lambda: f64) -> Tensor<R> {
    let insensitivity = relu(grad.abs().neg() + 1.0);
    w.clone() - w * insensitivity * lambda
}

/// Smallest threshold the search tries, as a fraction of the largest one: LOBSTER's
/// regularisation shrinks insensitive weights geometrically, so the threshold that removes
/// them can lie many orders of magnitude below the largest weight (EIDOSLAB's search
/// bisects down to steps of 1e-10).
pub const SMALLEST_THRESHOLD: f64 = 1e-10;

/// Bisection for the largest threshold in `[0, max_threshold]` whose loss stays within
/// `(1 + tolerance)` of `base_loss`; `loss_at(t)` is the validation loss with every weight
/// of magnitude below `t` set to zero. The bisection is on a log scale between
/// `max_threshold * SMALLEST_THRESHOLD` and `max_threshold`, so each step halves the
/// remaining ratio rather than the remaining distance: 12 steps find a threshold of 1e-6
/// as well as one of 0.5 (to 0.6%), where halving the distance never gets below
/// `max_threshold / 4096`. Returns 0 when even the smallest threshold is too much.
pub fn threshold_search(
    max_threshold: f64,
    base_loss: f64,
    tolerance: f64,
    iterations: usize,
    mut loss_at: impl FnMut(f64) -> f64,
) -> f64 {
    // a NaN anywhere is "too much": nothing is pruned on a number that is not one
    if !(max_threshold > 0.0 && max_threshold.is_finite() && base_loss.is_finite()) {
        return 0.0;
    }
    let limit = base_loss * (1.0 + tolerance);
    // false for a NaN loss
    let within = |loss: f64| loss <= limit;
    if within(loss_at(max_threshold)) {
        return max_threshold;
    }
    let (mut good, mut bad) = (max_threshold * SMALLEST_THRESHOLD, max_threshold);
    if !within(loss_at(good)) {
        return 0.0;
    }
    for _ in 0..iterations {
        let mid = (good * bad).sqrt();
        if within(loss_at(mid)) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lobster_update_matches_hand_computed_values() {
        let d = Device::flex();
        let w = Tensor::<1>::from_floats([1.0, -2.0, 0.5, 3.0], &d);
        let g = Tensor::<1>::from_floats([0.0, 0.5, -0.25, 2.0], &d);
        let out = lobster_update(w, g, 0.1)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        // 1 - 0.1*1*1; -2 - 0.1*(-2)*0.5; 0.5 - 0.1*0.5*0.75; |g| >= 1 leaves 3 alone
        let want = [0.9, -1.9, 0.4625, 3.0];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn threshold_search_finds_the_largest_tolerated_threshold() {
        // toy loss: flat until 0.3, then rising; tolerance 10% of base 1.0 -> loss <= 1.1
        let loss = |t: f64| if t < 0.3 { 1.0 } else { 1.0 + (t - 0.3) * 2.0 };
        let t = threshold_search(1.0, 1.0, 0.1, 30, loss);
        assert!((t - 0.35).abs() < 1e-6, "{t}");
        assert_eq!(threshold_search(1.0, 1.0, 0.0, 30, |t| 1.0 + t), 0.0);
        assert_eq!(threshold_search(0.2, 1.0, 0.0, 30, loss), 0.2);
        assert_eq!(threshold_search(0.0, 1.0, 0.0, 30, loss), 0.0);
        assert_eq!(threshold_search(f64::NAN, 1.0, 0.0, 30, loss), 0.0);
        assert_eq!(threshold_search(1.0, f64::NAN, 0.0, 30, loss), 0.0);
        assert_eq!(threshold_search(1.0, 1.0, 0.0, 30, |_| f64::NAN), 0.0);
    }

    #[test]
    fn twelve_steps_find_a_threshold_six_orders_of_magnitude_below_the_largest_weight() {
        // weights shrunk by LOBSTER to ~1e-6 can go; anything larger costs loss
        let loss = |t: f64| if t <= 2e-6 { 1.0 } else { 1.0 + t };
        let mut probes = 0;
        let t = threshold_search(1.0, 1.0, 0.0, 12, |t| {
            probes += 1;
            loss(t)
        });
        assert!(t > 2e-6 / 1.01 && t <= 2e-6, "{t}");
        assert_eq!(probes, 14, "the largest, the smallest, then 12 steps");
    }
}
