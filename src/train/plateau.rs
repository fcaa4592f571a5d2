//! Tracking whether a loss still improves: LOBSTER's wait before a threshold step and
//! early stopping (`--patience`) both count the epochs since the last improvement.

use serde::{Deserialize, Serialize};

/// The best loss seen and the epochs since it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Best loss so far (`None`: nothing seen yet).
    pub best: Option<f64>,
    /// Epochs since the last improvement.
    pub stale: usize,
    /// Relative margin a loss must beat the best by to count as an improvement
    /// (0: any decrease counts).
    pub tolerance: f64,
}

impl Plateau {
    /// A tracker that has seen nothing, with relative `tolerance`.
    pub fn new(tolerance: f64) -> Self {
        Self {
            best: None,
            stale: 0,
            tolerance,
        }
    }

    /// Records an epoch's loss; true if it improved on the best by more than the tolerance.
    /// A non-finite loss never improves.
    pub fn observe(&mut self, loss: f64) -> bool {
        let improved = loss.is_finite()
            && match self.best {
                None => true,
                Some(best) => loss < best - self.tolerance * best.abs(),
            };
        if improved {
            self.best = Some(loss);
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        improved
    }

    /// Forgets the best loss (after the network changed, e.g. by a threshold step).
    pub fn reset(&mut self) {
        self.best = None;
        self.stale = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_epochs_without_improvement_beyond_the_tolerance() {
        let mut p = Plateau::new(0.01);
        assert!(p.observe(1.0));
        assert!(!p.observe(0.995), "within 1%: no improvement");
        assert_eq!(p.stale, 1);
        assert!(!p.observe(f64::NAN));
        assert_eq!(p.stale, 2);
        assert!(p.observe(0.98));
        assert_eq!((p.best, p.stale), (Some(0.98), 0));
        p.reset();
        assert!(p.observe(5.0));
        let mut exact = Plateau::new(0.0);
        exact.observe(1.0);
        assert!(exact.observe(0.999_999));
    }
}
