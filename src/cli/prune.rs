//! `sparsecaps prune` and `sparsecaps export`.

use anyhow::Context;
use burn::prelude::*;

use super::args::{ExportArgs, PruneArgs, PruneMethod};
use crate::data::{DataSource, Dataset};
use crate::device;
use crate::export::{ModelInfo, load_model, save_model};
use crate::prune::{apply_masks, compact, global_sparsity, magnitude_masks, survival};
use crate::train::evaluate;
use crate::train::worker::EVAL_BATCH;

/// Records a model's sparsity in its info.
fn with_sparsity(mut info: ModelInfo, model: &crate::model::CapsNet) -> ModelInfo {
    let s = survival(model);
    info.sparsity = Some(global_sparsity(&s.layers));
    info.layer_sparsity = Some(
        s.layers
            .iter()
            .map(|l| (l.name.to_string(), l.sparsity()))
            .collect(),
    );
    info
}

/// Prunes a model file and writes the pruned (dense, masked) model.
pub fn run_prune(args: PruneArgs) -> anyhow::Result<()> {
    let dev = device::select(args.device)?;
    eprintln!("device: {dev}");
    let (model, info) = load_model(&args.model, &dev.device)?;
    if model.compact.is_some() {
        anyhow::bail!(
            "{} is a compact model; prune its dense original instead",
            args.model.display()
        );
    }
    let pruned = match args.method {
        PruneMethod::Magnitude => {
            let masks = magnitude_masks(&model, args.sparsity);
            apply_masks(model, &masks.to_device(&dev.device))
        }
    };
    let source = args
        .data
        .or_else(|| info.dataset.as_deref().and_then(|d| d.parse().ok()))
        .unwrap_or(DataSource::Mnist);
    let mut data = Dataset::load(&source).with_context(|| format!("dataset {source}"))?;
    data.limit(None, args.limit_test);
    let eval = evaluate(&pruned, &data.test, EVAL_BATCH, &dev.device);
    let mut info = with_sparsity(info, &pruned);
    info.test_accuracy = Some(eval.accuracy);
    save_model(&pruned, &info, &args.out)?;
    let s = survival(&pruned);
    println!(
        "pruned to sparsity {:.4}: accuracy {:.4} on {} test images; alive capsules {}/{} ({} types); wrote {}",
        info.sparsity.unwrap_or(0.0),
        eval.accuracy,
        eval.images,
        s.map.alive_count(),
        s.map.capsules(),
        s.map.alive_types(),
        args.out.display()
    );
    Ok(())
}

/// Writes a model file again, compacted with `--compact`.
pub fn run_export(args: ExportArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let (model, info) = load_model(&args.model, &device)?;
    let info = if model.compact.is_none() {
        with_sparsity(info, &model)
    } else {
        info
    };
    let out = if args.compact { compact(&model)? } else { model };
    save_model(&out, &info, &args.out)?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} capsules, {} parameters, {bytes} bytes)",
        args.out.display(),
        out.capsules(),
        out.param_count()
    );
    Ok(())
}
