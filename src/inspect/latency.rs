//! How long the app's interactive actions take, measured through the inspection worker the
//! app uses: a slider move (prune, compact, evaluate on the held-out digits) and the
//! inspection of one digit (what the canvas triggers). For `sparsecaps bench --app`.

use std::time::Instant;

use burn::prelude::*;

use super::messages::{InspectCommand, InspectEvent, PruneMethod};
use super::worker::Inspector;
use crate::data::Split;
use crate::model::CapsNet;
use crate::train::bench::median;

/// Median times of the app's actions, from command sent to answer received, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppLatency {
    /// A magnitude-slider move, to its first answer (accuracy on the first
    /// [`super::worker::QUICK_EVAL`] held-out images).
    pub slider_ms: f64,
    /// A structured (capsules) slider move, to its first answer.
    pub slider_capsules_ms: f64,
    /// A magnitude-slider move, to the answer on all held-out images.
    pub slider_full_ms: f64,
    /// A structured slider move, to the answer on all held-out images.
    pub slider_capsules_full_ms: f64,
    /// Inspection of one digit (batch 1, with routing and reconstruction).
    pub inspect_ms: f64,
    /// Held-out digits each slider move is evaluated on.
    pub held_out: usize,
}

/// Sends `cmd` and waits for the first answer that `done` accepts; returns the time taken.
fn round_trip(
    w: &Inspector,
    cmd: InspectCommand,
    done: impl Fn(&InspectEvent) -> bool,
) -> Result<f64, String> {
    let started = Instant::now();
    w.send(cmd).map_err(|e| e.to_string())?;
    Ok(started.elapsed().as_secs_f64() * 1e3 + wait_for(w, done)?)
}

/// Waits for the next answer that `done` accepts; returns the time waited.
fn wait_for(w: &Inspector, done: impl Fn(&InspectEvent) -> bool) -> Result<f64, String> {
    let started = Instant::now();
    loop {
        match w.recv_event() {
            Some(InspectEvent::Failed(e)) => return Err(e.to_string()),
            Some(e) if done(&e) => return Ok(started.elapsed().as_secs_f64() * 1e3),
            Some(_) => {}
            None => return Err("the inspection worker is gone".into()),
        }
    }
}

/// Times `repeat` rounds of slider moves (sparsities 0.3, 0.6, 0.9, each method) and digit
/// inspections of `model`, with `held_out` as the slider's evaluation set.
pub fn app_latency(
    model: CapsNet,
    held_out: Split,
    repeat: usize,
    device: &Device,
) -> Result<AppLatency, String> {
    let w = Inspector::spawn(device.clone(), None).map_err(|e| e.to_string())?;
    let n = held_out.len();
    let digit = held_out.image_f32(0);
    round_trip(&w, InspectCommand::SetModel(Box::new(model)), |e| {
        matches!(e, InspectEvent::ModelReady(_))
    })?;
    w.send(InspectCommand::SetHeldOut(Box::new(held_out)))
        .map_err(|e| e.to_string())?;
    // the digit is forgotten after each inspection, so slider moves time the pruning and
    // evaluation alone (the worker re-inspects a remembered digit after each move)
    let inspect = |w: &Inspector| {
        let ms = round_trip(w, InspectCommand::Inspect(digit.clone()), |e| {
            matches!(e, InspectEvent::Inspected(_))
        })?;
        round_trip(w, InspectCommand::Forget, |e| {
            matches!(e, InspectEvent::Forgotten)
        })?;
        Ok::<f64, String>(ms)
    };
    // (first answer, answer on all held-out images) of a slider move
    let slide = |w: &Inspector, sparsity: f64, method: PruneMethod| {
        let first = round_trip(w, InspectCommand::SetSparsity { sparsity, method }, |e| {
            matches!(e, InspectEvent::Pruned(_))
        })?;
        let full = |e: &InspectEvent| matches!(e, InspectEvent::Pruned(r) if r.evaluated == r.held_out);
        let rest = wait_for(w, full)?;
        Ok::<(f64, f64), String>((first, first + rest))
    };
    // warm-up: first calls build caches (magnitude order, capsule importance)
    inspect(&w)?;
    slide(&w, 0.5, PruneMethod::Magnitude)?;
    slide(&w, 0.5, PruneMethod::Capsules)?;
    let (mut magnitude, mut capsules, mut inspections) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        for s in [0.3, 0.6, 0.9] {
            magnitude.push(slide(&w, s, PruneMethod::Magnitude)?);
            inspections.push(inspect(&w)?);
            capsules.push(slide(&w, s, PruneMethod::Capsules)?);
        }
    }
    let first = |v: &[(f64, f64)]| median(v.iter().map(|t| t.0).collect());
    let all = |v: &[(f64, f64)]| median(v.iter().map(|t| t.1).collect());
    Ok(AppLatency {
        slider_ms: first(&magnitude),
        slider_capsules_ms: first(&capsules),
        slider_full_ms: all(&magnitude),
        slider_capsules_full_ms: all(&capsules),
        inspect_ms: median(inspections),
        held_out: n,
    })
}
