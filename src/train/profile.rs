//! Where a training step spends its time: each stage of the forward pass, the backward
//! pass and the optimiser step, timed separately with a device sync between stages.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use super::bench::{median, random_inputs};
use crate::model::CapsNet;

/// The stages of a training step, in order.
pub const STAGES: [&str; 7] = [
    "conv1",
    "primary conv",
    "votes",
    "routing",
    "decoder + loss",
    "backward",
    "optimizer step",
];

/// Median time of each stage of a training step, in milliseconds, in [`STAGES`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct StageProfile {
    /// Median milliseconds per stage.
    pub stage_ms: Vec<f64>,
    /// Batch size used.
    pub batch: usize,
}

impl StageProfile {
    /// Sum of the stages (a little more than a step without syncs between stages).
    pub fn total_ms(&self) -> f64 {
        self.stage_ms.iter().sum()
    }

    /// `(stage name, ms)` pairs.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        STAGES.iter().copied().zip(self.stage_ms.iter().copied())
    }
}

/// A clock that syncs the device before reading itself.
struct StageClock<'a> {
    device: &'a Device,
    last: Instant,
}

impl<'a> StageClock<'a> {
    fn start(device: &'a Device) -> Self {
        let _ = device.sync();
        Self {
            device,
            last: Instant::now(),
        }
    }

    /// Milliseconds since the previous lap, after the device has finished its work.
    fn lap(&mut self) -> f64 {
        let _ = self.device.sync();
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        ms
    }
}

/// Profiles `repeat` training steps of `model` at `batch` after one warm-up step.
/// `on_progress(done, total)` is called after each timed step.
pub fn profile_step(
    model: &CapsNet,
    device: &Device,
    batch: usize,
    repeat: usize,
    mut on_progress: impl FnMut(usize, usize),
) -> StageProfile {
    let repeat = repeat.max(1);
    let ad = device.clone().autodiff();
    let mut net = model.clone().fork(&ad).train();
    let mut optim = AdamConfig::new().init();
    let (x, y) = random_inputs(model, batch, &ad);
    let mut laps: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    for i in 0..=repeat {
        let mut clock = StageClock::start(device);
        let h = net.conv1(x.clone());
        let t_conv1 = clock.lap();
        let primary = net.primary_from_conv1(h);
        let t_primary = clock.lap();
        let votes = net.votes(primary.clone());
        let t_votes = clock.lap();
        let out = net.route_votes(primary, votes, false);
        let t_routing = clock.lap();
        let loss = net.loss(&out, x.clone(), y.clone()).total;
        let t_loss = clock.lap();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let t_backward = clock.lap();
        net = optim.step(1e-3, net.clone(), grads);
        let t_optim = clock.lap();
        if i > 0 {
            let times = [
                t_conv1, t_primary, t_votes, t_routing, t_loss, t_backward, t_optim,
            ];
            for (stage, t) in laps.iter_mut().zip(times) {
                stage.push(t);
            }
            on_progress(i, repeat);
        }
    }
    StageProfile {
        stage_ms: laps.into_iter().map(median).collect(),
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn every_stage_is_timed_and_the_step_trains() {
        let dev = Device::flex();
        let model = CapsNet::init(&Preset::Tiny.config(), 3, &dev).unwrap();
        let mut calls = 0;
        let p = profile_step(&model, &dev, 4, 2, |_, _| calls += 1);
        assert_eq!(calls, 2);
        assert_eq!(p.stage_ms.len(), STAGES.len());
        assert!(p.stage_ms.iter().all(|t| t.is_finite() && *t >= 0.0), "{p:?}");
        assert!(p.total_ms() > 0.0);
        assert_eq!(p.named().count(), 7);
    }
}
