//! `sparsecaps bench`.

use anyhow::Context;

use super::args::BenchArgs;
use super::progress::Progress;

use crate::device;
use crate::export::load_model;
use crate::inspect::latency::{AppLatency, app_latency};
use crate::inspect::mnist_held_out;
use crate::model::{CapsNet, Preset};
use crate::prune::survival;
use crate::train::bench::bench;
use crate::train::profile::{StageProfile, profile_step};

/// Times a model file or a preset and prints the medians.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dev = device::select(args.device)?;
    let (model, label) = subject(&args, &dev.device)?;
    model.config.check_batch(args.batch as usize)?;
    model.check_batch_on_device(args.batch as usize)?;
    // a model that cannot take the app's digits is refused before anything is timed
    let held = args.app.then(|| app_digits(&model)).transpose()?;
    eprintln!("device: {dev}");
    let repeat = args.repeat as usize;
    let mut progress = Progress::new(6 * repeat as u64, "bench");
    let r = bench(&model, &dev.device, args.batch as usize, repeat, |d, _| {
        progress.update(d as u64, "")
    });
    progress.finish();
    let s = survival(&model);
    let params = model.param_count();
    println!(
        "{label}: train step {:.1} ms (first {:.0} ms), inference {:.1} ms at batch {}, latency {:.2} ms; {} params, {}/{} capsules alive; {}",
        r.train_step_ms,
        r.first_step_ms,
        r.infer_ms,
        r.batch,
        r.latency_ms,
        params,
        s.map.alive_count(),
        s.map.capsules(),
        dev.name
    );
    let app = match held {
        Some(held) => Some(app(&model, held, &dev.device, repeat)?),
        None => None,
    };
    let profile = if args.profile {
        Some(profile(&model, &dev.device, args.batch as usize, repeat))
    } else {
        None
    };
    if args.json {
        let mut json = serde_json::json!({
            "preset": label,
            "model": args.model.as_ref().map(|p| p.display().to_string()),
            "capsules": s.map.capsules(),
            "alive_capsules": s.map.alive_count(),
            "train_step_ms": r.train_step_ms,
            "infer_ms": r.infer_ms,
            "latency_ms": r.latency_ms,
            "batch": r.batch,
            "first_step_ms": r.first_step_ms,
            "params": params,
            "device": dev.name,
        });
        if let Some(a) = app {
            json["slider_ms"] = a.slider_ms.into();
            json["slider_capsules_ms"] = a.slider_capsules_ms.into();
            json["slider_full_ms"] = a.slider_full_ms.into();
            json["slider_capsules_full_ms"] = a.slider_capsules_full_ms.into();
            json["inspect_ms"] = a.inspect_ms.into();
        }
        if let Some(p) = profile {
            let stages: serde_json::Map<String, serde_json::Value> =
                p.named().map(|(s, ms)| (s.to_string(), ms.into())).collect();
            json["profile_ms"] = stages.into();
        }
        println!("{json}");
    }
    Ok(())
}

/// The model file to time, or a fresh network of the preset (`small` by default), with the
/// label its line starts with.
fn subject(args: &BenchArgs, device: &burn::prelude::Device) -> anyhow::Result<(CapsNet, String)> {
    Ok(match &args.model {
        Some(path) => {
            let (m, info) = load_model(path, device)?;
            (m, info.preset.unwrap_or_else(|| "model".into()))
        }
        None => {
            let preset = args.preset.unwrap_or(Preset::Small);
            (CapsNet::init(&preset.config(), 0, device)?, preset.to_string())
        }
    })
}

/// The held-out MNIST digits `--app` times the app on, if `model` takes them.
fn app_digits(model: &CapsNet) -> anyhow::Result<crate::data::Split> {
    let (_, held) = mnist_held_out()?;
    held.check_fits(model.config.input(), model.config.classes)
        .context("--app times the app on MNIST digits")?;
    Ok(held)
}

/// Times and prints each stage of a training step (`--profile`).
fn profile(model: &CapsNet, device: &burn::prelude::Device, batch: usize, repeat: usize) -> StageProfile {
    let mut progress = Progress::new(repeat as u64, "profile");
    let p = profile_step(model, device, batch, repeat, |d, _| progress.update(d as u64, ""));
    progress.finish();
    let total = p.total_ms().max(1e-9);
    println!(
        "training step by stage at batch {} (medians, device synced between stages; sum {:.1} ms):",
        p.batch,
        p.total_ms()
    );
    for (stage, ms) in p.named() {
        println!("  {stage:<15} {ms:9.1} ms  {:5.1}%", 100.0 * ms / total);
    }
    p
}

/// Times and prints the app's slider move and digit inspection (`--app`).
fn app(
    model: &CapsNet,
    held: crate::data::Split,
    device: &burn::prelude::Device,
    repeat: usize,
) -> anyhow::Result<AppLatency> {
    let a = app_latency(model.clone(), held, repeat, device).map_err(anyhow::Error::msg)?;
    let quick = crate::inspect::worker::QUICK_EVAL.min(a.held_out);
    println!(
        "app: slider move {:.0} ms to the first answer ({quick} digits), {:.0} ms to all {} (capsules {:.0} / {:.0} ms), digit inspection {:.1} ms",
        a.slider_ms,
        a.slider_full_ms,
        a.held_out,
        a.slider_capsules_ms,
        a.slider_capsules_full_ms,
        a.inspect_ms
    );
    Ok(a)
}
