//! `sparsecaps prune` and `sparsecaps export`.

use burn::prelude::*;

use super::args::{ExportArgs, PruneArgs, PruneMethod};
use super::common::{Loaded, load_with_data};
use super::progress::Progress;
use crate::data::Dataset;
use crate::device;
use crate::export::{load_model, save_model};
use crate::model::CapsNet;
use crate::prune::{Masks, compact, prune_to, survival};
use crate::train::evaluate;
use crate::train::finetune::{FinetuneSettings, finetune};
use crate::train::worker::EVAL_BATCH;

pub use crate::prune::with_sparsity;

/// Prunes a dense model with `method` at `sparsity`, then `conv1` of conv1's channels, and
/// fine-tunes it under the resulting masks when `finetune.epochs > 0` (with a progress
/// display).
pub fn prune_model(
    model: CapsNet,
    (method, sparsity, conv1): (PruneMethod, f64, f64),
    finetune_settings: FinetuneSettings,
    data: &Dataset,
    device: &Device,
) -> CapsNet {
    let images = || {
        let sample: Vec<usize> = (0..data.train.len().min(512)).collect();
        data.train.batch(&sample, device).0
    };
    let pruned = prune_to(model, (method, sparsity, conv1), images, device);
    if finetune_settings.epochs == 0 {
        return pruned;
    }
    let masks = Masks::from_nonzero(&pruned);
    let steps = (data.train.len().div_ceil(finetune_settings.batch) * finetune_settings.epochs) as u64;
    let mut progress = Progress::new(steps, "fine-tune");
    let tuned = finetune(pruned, &masks, &data.train, finetune_settings, device, |d, _| {
        progress.update(d as u64, "")
    });
    progress.finish();
    tuned
}

/// Prunes a model file and writes the pruned (dense, masked) model.
pub fn run_prune(args: PruneArgs) -> anyhow::Result<()> {
    if !(args.lr.is_finite() && args.lr > 0.0) {
        anyhow::bail!("--lr must be a positive number, not {}", args.lr);
    }
    crate::fsio::check_output_file(&args.out)?;
    let dev = device::select(args.device)?;
    let Loaded {
        model, info, data, ..
    } = load_with_data(
        &args.model,
        args.data.clone(),
        (args.limit_train, args.limit_test),
        &dev.device,
        Some("prune"),
    )?;
    model.config.check_batch(args.batch)?;
    eprintln!("device: {dev}");
    let settings = FinetuneSettings {
        epochs: args.finetune_epochs,
        batch: args.batch,
        lr: args.lr,
        ..FinetuneSettings::default()
    };
    let how = (args.method, args.sparsity, args.conv1);
    let pruned = prune_model(model, how, settings, &data, &dev.device);
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
    crate::fsio::check_output_file(&args.out)?;
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
