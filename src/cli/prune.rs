//! `sparsecaps prune` and `sparsecaps export`.

use std::path::Path;

use burn::prelude::*;

use super::args::{ExportArgs, PruneArgs, PruneMethod};
use super::common::{Loaded, load_with_data};
use super::progress::Progress;
use crate::data::Dataset;
use crate::device;
use crate::export::{load_model, save_model, save_model_as};
use crate::model::CapsNet;
use crate::prune::backbone::{EagleEye, eagleeye, flops_fraction};
use crate::prune::cost::mflops_per_image;
use crate::prune::{Masks, compact, prune_to, survival};
use crate::train::evaluate;
use crate::train::finetune::{FinetuneSettings, finetune};
use crate::train::worker::EVAL_BATCH;

pub use crate::prune::with_sparsity;

/// Prunes a dense model with `method` at `sparsity`, then `conv1` of conv1's channels, and
/// fine-tunes it under the resulting masks when `finetune.epochs > 0` (with a progress
/// display). The backbone method runs an EagleEye search over `candidates` channel choices
/// to keep `1 - sparsity` of the backbone's FLOPs (sparsity 0: the model as it is).
pub fn prune_model(
    model: CapsNet,
    (method, sparsity, conv1): (PruneMethod, f64, f64),
    (finetune_settings, candidates): (FinetuneSettings, usize),
    data: &Dataset,
    device: &Device,
) -> anyhow::Result<CapsNet> {
    if method == PruneMethod::Backbone {
        refuse_conv1_with_backbone(method, conv1)?;
        if sparsity == 0.0 {
            return Ok(tune(model, finetune_settings, data, device));
        }
        let search = EagleEye {
            flops: 1.0 - sparsity,
            candidates,
            ..EagleEye::default()
        };
        return prune_backbone(&model, search, finetune_settings, data, device);
    }
    let images = || {
        let sample: Vec<usize> = (0..data.train.len().min(512)).collect();
        data.train.batch(&sample, device).0
    };
    let pruned = prune_to(model, (method, sparsity, conv1), images, device)?;
    Ok(tune(pruned, finetune_settings, data, device))
}

/// Refuses a model (the file at `path`) without a backbone for backbone pruning.
pub(super) fn require_backbone(path: &Path, model: &CapsNet) -> anyhow::Result<()> {
    if model.backbone.is_none() {
        anyhow::bail!(
            "{} has no backbone to prune (backbone presets: resnet-caps, mobilenet-caps)",
            path.display()
        );
    }
    Ok(())
}

/// Refuses a backbone sparsity (fraction of its FLOPs removed) that no channel choice can
/// reach: at least one channel stays in every layer group.
pub(super) fn check_backbone_target(
    config: &crate::model::CapsNetConfig,
    sparsity: f64,
) -> anyhow::Result<()> {
    let smallest = crate::prune::backbone::smallest_flops(config)?;
    let keep = 1.0 - sparsity;
    if keep < smallest - crate::prune::backbone::FLOPS_TOLERANCE {
        anyhow::bail!(
            "keeping {:.2}% of the backbone's FLOPs is below the least it can keep, {:.1}% (one channel in every layer group)",
            100.0 * keep,
            100.0 * smallest
        );
    }
    Ok(())
}

/// `--conv1` prunes the head's conv1 after magnitude or capsule pruning; the backbone
/// method narrows the backbone instead, so the two do not combine.
fn refuse_conv1_with_backbone(method: PruneMethod, conv1: f64) -> anyhow::Result<()> {
    if method == PruneMethod::Backbone && conv1 > 0.0 {
        anyhow::bail!("--conv1 prunes the CapsNet head's conv1; it does not combine with --method backbone");
    }
    Ok(())
}

/// Fine-tunes `pruned` under the masks of its zero weights for `settings.epochs` epochs
/// (none: returned as it is), with a progress display.
fn tune(pruned: CapsNet, settings: FinetuneSettings, data: &Dataset, device: &Device) -> CapsNet {
    if settings.epochs == 0 {
        return pruned;
    }
    let masks = Masks::from_nonzero(&pruned);
    let steps = (data.train.len().div_ceil(settings.batch) * settings.epochs) as u64;
    let mut progress = Progress::new(steps, "fine-tune");
    let tuned = finetune(pruned, &masks, &data.train, settings, device, |d, _| {
        progress.update(d as u64, "")
    });
    progress.finish();
    tuned
}

/// EagleEye search on the backbone (with a progress display and a line per candidate),
/// then fine-tuning of the best candidate.
fn prune_backbone(
    model: &CapsNet,
    search: EagleEye,
    settings: FinetuneSettings,
    data: &Dataset,
    device: &Device,
) -> anyhow::Result<CapsNet> {
    let mut progress = Progress::new(search.candidates as u64, "EagleEye");
    let (best, candidates) = eagleeye(
        model,
        &data.train,
        search,
        |net, images, batch| evaluate(net, images, batch, device).accuracy,
        |done, _| progress.update(done as u64, "candidates scored"),
    )?;
    progress.finish();
    for c in &candidates {
        eprintln!(
            "candidate: FLOPs {:.3}, accuracy after adaptive BN {:.4}, channels {:?}",
            c.flops, c.accuracy, c.counts
        );
    }
    let dense_mflops = mflops_per_image(model);
    let best_counts = best.config.backbone_channels.clone();
    eprintln!(
        "kept: {:?} channels per group, {:.1}% of the backbone's FLOPs, {:.1} of {:.1} MFLOPs per image",
        best_counts,
        100.0 * flops_fraction(&best.config, &best_counts),
        mflops_per_image(&best),
        dense_mflops
    );
    Ok(tune(best, settings, data, device))
}

/// Refuses a fine-tuning batch that does not fit in memory, or (when fine-tuning runs) in
/// the device's buffers.
pub(super) fn check_finetune_batch(model: &CapsNet, settings: &FinetuneSettings) -> anyhow::Result<()> {
    model.config.check_batch(settings.batch)?;
    if settings.epochs > 0 {
        model.check_batch_on_device(settings.batch)?;
    }
    Ok(())
}

/// Prunes a model file and writes the pruned (dense, masked) model; backbone pruning
/// writes the narrowed network.
pub fn run_prune(args: PruneArgs) -> anyhow::Result<()> {
    let settings = args.finetune.settings()?;
    let backbone = args.method == PruneMethod::Backbone;
    let sparsity = match (args.sparsity, args.flops) {
        (Some(s), None) => s,
        (None, Some(f)) if backbone => 1.0 - f,
        (None, Some(_)) => anyhow::bail!("--flops is for --method backbone; give --sparsity"),
        (Some(_), Some(_)) => anyhow::bail!("give --sparsity or --flops, not both"),
        (None, None) => anyhow::bail!("give --sparsity (or --flops with --method backbone)"),
    };
    if backbone && sparsity >= 1.0 {
        anyhow::bail!(
            "a backbone must keep some of its FLOPs: --flops above 0 (or --sparsity below 1), not {:.4}",
            1.0 - sparsity
        );
    }
    // before the data loads, not only when pruning starts
    refuse_conv1_with_backbone(args.method, args.conv1)?;
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
    check_finetune_batch(&model, &settings)?;
    if backbone {
        require_backbone(&args.model, &model)?;
        check_backbone_target(&model.config, sparsity)?;
    }
    eprintln!("device: {dev}");
    let how = (args.method, sparsity, args.conv1);
    let pruned = prune_model(model, how, (settings, args.candidates), &data, &dev.device)?;
    let eval = evaluate(&pruned, &data.test, EVAL_BATCH, &dev.device);
    let mut info = with_sparsity(info, &pruned);
    info.test_accuracy = Some(eval.accuracy);
    save_model(&pruned, &info, &args.out)?;
    let s = survival(&pruned);
    let what = if backbone {
        let kept = flops_fraction(&pruned.config, &pruned.config.backbone_channels);
        format!("{:.1}% of the backbone's FLOPs", 100.0 * kept)
    } else {
        format!("sparsity {:.4}", info.sparsity.unwrap_or(0.0))
    };
    println!(
        "pruned to {what}: accuracy {:.4} on {} test images; alive capsules {}/{} ({} types); {:.1} MFLOPs per image; wrote {}",
        eval.accuracy,
        eval.images,
        s.map.alive_count(),
        s.map.capsules(),
        s.map.alive_types(),
        mflops_per_image(&pruned),
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
    save_model_as(&out, &info, &args.out, args.f16)?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} capsules, {} parameters, {bytes} bytes{})",
        args.out.display(),
        out.capsules(),
        out.param_count(),
        if args.f16 { ", weights as f16" } else { "" }
    );
    Ok(())
}
