//! Timing of training steps, batch inference and single-image latency.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::model::CapsNet;

/// Median timings of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Training step (forward, backward, Adam) at `batch`, ms.
    pub train_step_ms: f64,
    /// Inference at `batch`, ms.
    pub infer_ms: f64,
    /// Inference of one image, ms.
    pub latency_ms: f64,
    /// Batch size used.
    pub batch: usize,
    /// The first (untimed) training step, ms: on a GPU it includes compiling and
    /// autotuning the kernels, so it shows what a persisted autotune cache saves.
    pub first_step_ms: f64,
}

/// Median of a list of values (0 for an empty list).
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn time_ms(device: &Device, f: impl FnOnce()) -> f64 {
    let _ = device.sync();
    let t = Instant::now();
    f();
    let _ = device.sync();
    t.elapsed().as_secs_f64() * 1e3
}

/// Random images in [0, 1] and cycling labels for timing runs.
///
/// # Shapes
/// returns images `[batch, C, H, W]` and labels `[batch]`
pub(crate) fn random_inputs(model: &CapsNet, batch: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let c = &model.config;
    let images = Tensor::random(
        [batch, c.in_channels, c.height, c.width],
        Distribution::Uniform(0.0, 1.0),
        device,
    );
    let labels: Vec<i64> = (0..batch).map(|i| (i % c.classes) as i64).collect();
    (
        images,
        Tensor::from_data(TensorData::new(labels, [batch]), device),
    )
}

/// Times `model` on `device`: one warm-up then `repeat` timed runs of a training step
/// and of batch inference, and `4 * repeat` single-image inferences; medians are returned.
/// `on_progress(done, total)` is called after each timed run.
pub fn bench(
    model: &CapsNet,
    device: &Device,
    batch: usize,
    repeat: usize,
    mut on_progress: impl FnMut(usize, usize),
) -> BenchResult {
    let repeat = repeat.max(1);
    let total = 2 * repeat + 4 * repeat;
    let mut done = 0;
    // training step
    let ad = device.clone().autodiff();
    let mut train_model = model.clone().fork(&ad).train();
    let mut optim = AdamConfig::new().init();
    let (x, y) = random_inputs(model, batch, &ad);
    let mut train_times = Vec::new();
    let mut first_step_ms = 0.0;
    for i in 0..=repeat {
        let ms = time_ms(device, || {
            let out = train_model.forward(x.clone(), false);
            let loss = train_model.loss(&out, x.clone(), y.clone()).total;
            let grads = GradientsParams::from_grads(loss.backward(), &train_model);
            train_model = optim.step(1e-3, train_model.clone(), grads);
        });
        if i > 0 {
            train_times.push(ms);
            done += 1;
            on_progress(done, total);
        } else {
            first_step_ms = ms;
        }
    }
    drop(train_model);
    // batch inference
    let (x, _) = random_inputs(model, batch, device);
    let mut infer_times = Vec::new();
    for i in 0..=repeat {
        let ms = time_ms(device, || {
            let _ = model.forward(x.clone(), false).lengths.argmax(1).into_data();
        });
        if i > 0 {
            infer_times.push(ms);
            done += 1;
            on_progress(done, total);
        }
    }
    // latency
    let (x1, _) = random_inputs(model, 1, device);
    let mut latency = Vec::new();
    for i in 0..=4 * repeat {
        let ms = time_ms(device, || {
            let _ = model.forward(x1.clone(), false).lengths.into_data();
        });
        if i > 0 {
            latency.push(ms);
            done += 1;
            on_progress(done, total);
        }
    }
    BenchResult {
        train_step_ms: median(train_times),
        infer_ms: median(infer_times),
        latency_ms: median(latency),
        batch,
        first_step_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
