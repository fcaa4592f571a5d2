//! `sparsecaps sweep`: accuracy, surviving capsules, size, compute and speed at several
//! sparsities, as `DIR/sweep.csv` and `DIR/sweep.png`.

use std::fmt::Write as _;

use anyhow::Context;

use super::args::{PruneMethod, SweepArgs};
use super::common::{Loaded, load_with_data};
use super::plot::{Series, save_chart};
use super::prune::{prune_model, with_sparsity};
use crate::device;
use crate::export::{save_model, write_atomic};
use crate::prune::cost::mflops_per_image;
use crate::prune::{compact, survival};
use crate::train::bench::bench;
use crate::train::evaluate;
use crate::train::finetune::FinetuneSettings;
use crate::train::worker::EVAL_BATCH;

/// Header of `sweep.csv`.
pub const SWEEP_HEADER: &str = "sparsity,method,accuracy,alive_capsules,capsules,alive_types,file_bytes,\
mflops_per_image,train_step_ms,infer_ms,latency_ms";

/// Runs the sweep.
pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let dev = device::select(args.device)?;
    eprintln!("device: {dev}");
    let Loaded {
        model, info, data, ..
    } = load_with_data(
        &args.model,
        args.data.clone(),
        (args.limit_train, args.limit_test),
        &dev.device,
        Some("sweep"),
    )?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let method = match args.method {
        PruneMethod::Magnitude => "magnitude",
        PruneMethod::Capsules => "capsules",
    };
    let mut csv = format!("{SWEEP_HEADER}\n");
    let mut accuracy = Vec::new();
    let mut alive = Vec::new();
    for &s in &args.sparsities {
        let settings = FinetuneSettings {
            epochs: args.finetune_epochs,
            batch: 32,
            lr: 1e-3,
            seed: 7,
        };
        let pruned = prune_model(model.clone(), args.method, s, settings, &data, &dev.device);
        let eval = evaluate(&pruned, &data.test, EVAL_BATCH, &dev.device);
        let surv = survival(&pruned).map;
        let path = args.out.join(format!("{method}-{s}.safetensors"));
        let info = with_sparsity(info.clone(), &pruned);
        let (small, file_bytes) = match compact(&pruned) {
            Ok(small) => {
                save_model(&small, &info, &path)?;
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (small, bytes)
            }
            // nothing alive: keep the dense model (it predicts from the biases alone)
            Err(_) => {
                save_model(&pruned, &info, &path)?;
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (pruned, bytes)
            }
        };
        let timing = bench(&small, &dev.device, 128, args.repeat, |_, _| {});
        writeln!(
            csv,
            "{s},{method},{:.4},{},{},{},{file_bytes},{:.2},{:.1},{:.1},{:.3}",
            eval.accuracy,
            surv.alive_count(),
            surv.capsules(),
            surv.alive_types(),
            mflops_per_image(&small),
            timing.train_step_ms,
            timing.infer_ms,
            timing.latency_ms
        )?;
        eprintln!(
            "sparsity {s}: accuracy {:.4}, capsules {}/{}, {file_bytes} bytes, inference {:.1} ms",
            eval.accuracy,
            surv.alive_count(),
            surv.capsules(),
            timing.infer_ms
        );
        accuracy.push((s, eval.accuracy));
        alive.push((s, surv.alive_count() as f64 / surv.capsules().max(1) as f64));
    }
    write_atomic(&args.out.join("sweep.csv"), csv.as_bytes())?;
    let chart = [
        Series {
            points: accuracy,
            color: [31, 119, 180],
        },
        Series {
            points: alive,
            color: [214, 39, 40],
        },
    ];
    save_chart(&args.out.join("sweep.png"), &chart).context("cannot write sweep.png")?;
    print!("{csv}");
    println!(
        "wrote {} and {}",
        args.out.join("sweep.csv").display(),
        args.out.join("sweep.png").display()
    );
    Ok(())
}
