//! Learning-rate schedules: the factor the base learning rate is multiplied by at a step.

use serde::{Deserialize, Serialize};

/// How the learning rate changes over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr * decay^(e-1)` throughout epoch e (from 1); `--lr-decay` sets the decay.
    #[default]
    Exponential,
    /// Half a cosine from `lr` down to 0 over the run's epochs, a new value every step;
    /// the usual choice for a fixed budget of epochs. `--epochs` on resume stretches it.
    Cosine,
}

impl LrSchedule {
    /// The factor of the base learning rate at step `step` (from 0) of epoch `epoch`
    /// (from 1) of a run of `epochs` epochs of `steps` steps each.
    pub fn factor(self, decay: f64, (epoch, epochs): (usize, usize), (step, steps): (usize, usize)) -> f64 {
        match self {
            Self::Exponential => decay.powi(epoch.saturating_sub(1) as i32),
            Self::Cosine => {
                let total = (epochs * steps).max(1) as f64;
                let done = (epoch.saturating_sub(1) * steps + step) as f64;
                let progress = (done / total).clamp(0.0, 1.0);
                0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn exponential_is_constant_within_an_epoch() {
        let s = LrSchedule::Exponential;
        assert_eq!(s.factor(0.5, (1, 10), (0, 100)), 1.0);
        assert_eq!(s.factor(0.5, (3, 10), (0, 100)), 0.25);
        assert_eq!(s.factor(0.5, (3, 10), (99, 100)), 0.25);
    }

    #[test]
    fn cosine_falls_from_one_to_zero_over_the_run() {
        let s = LrSchedule::Cosine;
        assert_eq!(s.factor(0.9, (1, 4), (0, 10)), 1.0);
        // half-way: the third epoch's first step is step 20 of 40
        let mid = s.factor(0.9, (3, 4), (0, 10));
        assert!((mid - 0.5).abs() < 1e-12, "{mid}");
        let last = s.factor(0.9, (4, 4), (9, 10));
        assert!(last > 0.0 && last < 0.01, "{last}");
        let mut prev = 2.0;
        for e in 1..=4 {
            for i in 0..10 {
                let f = s.factor(0.9, (e, 4), (i, 10));
                assert!(f < prev, "not falling at epoch {e} step {i}");
                prev = f;
            }
        }
        // past the end it stays at 0 (resuming refuses a total below the epochs done)
        assert_eq!(s.factor(0.9, (5, 4), (0, 10)), 0.0);
    }
}
