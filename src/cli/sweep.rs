//! `sparsecaps sweep`: accuracy, surviving capsules, size, compute and speed at several
//! sparsities, as `DIR/sweep.csv`, `DIR/sweep.md` (with ratios to the baseline) and a chart,
//! `DIR/sweep.svg` and `DIR/sweep.png`.

use std::path::Path;

use anyhow::Context;
use burn::prelude::*;

use super::args::{PruneMethod, SweepArgs};
use super::common::{Loaded, load_with_data};
use super::plot::{Chart, Series, png_chart, svg_chart};
use super::prune::{prune_model, with_sparsity};
use crate::data::{DataSource, Dataset, Split};
use crate::device;
use crate::export::{load_model, save_model, write_atomic};
use crate::model::CapsNet;
use crate::prune::cost::mflops_per_image;
use crate::prune::{compact, survival};
use crate::train::bench::bench;
use crate::train::evaluate;
use crate::train::worker::EVAL_BATCH;

/// Header of `sweep.csv`.
pub const SWEEP_HEADER: &str = "sparsity,method,accuracy,alive_capsules,capsules,alive_types,file_bytes,\
mflops_per_image,train_step_ms,infer_ms,latency_ms,weight_sparsity";

/// Everything measured of one model (one line of `sweep.csv`).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Row {
    pub(super) accuracy: f64,
    pub(super) alive: usize,
    pub(super) capsules: usize,
    pub(super) types: usize,
    pub(super) file_bytes: u64,
    pub(super) mflops: f64,
    pub(super) train_step_ms: f64,
    pub(super) infer_ms: f64,
    pub(super) latency_ms: f64,
    pub(super) weight_sparsity: f64,
}

/// The batch each row's training step and inference are timed at.
const BENCH_BATCH: usize = 128;

/// Evaluates, sizes and times `model`, stored at `file`.
fn measure(model: &CapsNet, file: &Path, test: &Split, repeat: usize, device: &Device) -> Row {
    measure_evaluated(
        model,
        file,
        evaluate(model, test, EVAL_BATCH, device),
        repeat,
        device,
    )
}

/// [`measure`] of a model already evaluated (`eval`), written to `file` before this.
fn measure_evaluated(
    model: &CapsNet,
    file: &Path,
    eval: crate::train::Evaluation,
    repeat: usize,
    device: &Device,
) -> Row {
    let s = survival(model);
    let timing = bench(model, device, BENCH_BATCH, repeat, |_, _| {});
    Row {
        accuracy: eval.accuracy,
        alive: s.map.alive_count(),
        capsules: s.map.capsules(),
        types: s.map.alive_types(),
        file_bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        mflops: mflops_per_image(model),
        train_step_ms: timing.train_step_ms,
        infer_ms: timing.infer_ms,
        latency_ms: timing.latency_ms,
        weight_sparsity: s.dense_sparsity(&model.config),
    }
}

/// `value (ratio×)` for the Markdown table.
fn with_ratio(value: String, x: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{value} ({:.2}×)", x / base)
    } else {
        value
    }
}

/// One Markdown table row; ratios are to `base`.
fn markdown_row(label: &str, r: &Row, base: &Row) -> String {
    let cells = [
        label.to_string(),
        format!(
            "{:.2}% ({:+.2} pt)",
            100.0 * r.accuracy,
            100.0 * (r.accuracy - base.accuracy)
        ),
        format!("{:.1}%", 100.0 * r.weight_sparsity),
        with_ratio(
            format!("{}/{}", r.alive, r.capsules),
            r.alive as f64,
            base.alive as f64,
        ),
        r.types.to_string(),
        with_ratio(
            format!("{:.2} MB", r.file_bytes as f64 / 1e6),
            r.file_bytes as f64,
            base.file_bytes as f64,
        ),
        with_ratio(format!("{:.1}", r.mflops), r.mflops, base.mflops),
        with_ratio(
            format!("{:.0} ms", r.train_step_ms),
            r.train_step_ms,
            base.train_step_ms,
        ),
        with_ratio(format!("{:.0} ms", r.infer_ms), r.infer_ms, base.infer_ms),
        with_ratio(format!("{:.2} ms", r.latency_ms), r.latency_ms, base.latency_ms),
    ];
    format!("| {} |\n", cells.join(" | "))
}

/// Runs the sweep.
pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let settings = args.finetune.settings()?;
    let dev = device::select(args.device)?;
    let Loaded {
        model,
        info,
        data,
        source,
    } = load_with_data(
        &args.model,
        args.data.clone(),
        (args.limit_train, args.limit_test),
        &dev.device,
        Some("sweep"),
    )?;
    let method = args.method.name();
    if args.method == PruneMethod::Backbone {
        check_backbone_sparsities(&args, &model)?;
    }
    let base_path = args.baseline.as_deref().unwrap_or(&args.model);
    let base_model = match &args.baseline {
        Some(path) => load_baseline(path, &data, &source, &dev.device)?,
        None => model.clone(),
    };
    // every row times a training step at this batch; fine-tuning takes fewer images
    model.check_batch_on_device(BENCH_BATCH)?;
    base_model.check_batch_on_device(BENCH_BATCH)?;
    super::prune::check_finetune_batch(&model, &settings)?;
    crate::fsio::prepare_output_dir(&args.out, &output_files(method, &args.sparsities), &[])?;
    eprintln!("device: {dev}");
    eprintln!("baseline {}", base_path.display());
    let base = measure(&base_model, base_path, &data.test, args.repeat, &dev.device);
    drop(base_model);
    let mut csv = format!("{SWEEP_HEADER}\n");
    let mut md = format!(
        "| {method} sparsity | accuracy | weight sparsity | alive capsules K/N | alive types | file | \
         MFLOPs/image | train step b128 | inference b128 | latency b1 |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    md.push_str(&markdown_row("baseline", &base, &base));
    let mut curves = Curves::default();
    for &s in &args.sparsities {
        let conv1 = if s > 0.0 { args.conv1 } else { 0.0 };
        let pruned = prune_model(
            model.clone(),
            (args.method, s, conv1),
            (settings, args.candidates),
            &data,
            &dev.device,
        )?;
        let path = args.out.join(model_file(method, s));
        let mut info = with_sparsity(info.clone(), &pruned);
        // nothing alive: keep the dense model (it predicts from the biases alone)
        let small = compact(&pruned).unwrap_or(pruned);
        // the file records its own accuracy, not the model's it was pruned from
        let eval = evaluate(&small, &data.test, EVAL_BATCH, &dev.device);
        info.test_accuracy = Some(eval.accuracy);
        save_model(&small, &info, &path)?;
        let r = measure_evaluated(&small, &path, eval, args.repeat, &dev.device);
        csv.push_str(&csv_row(s, method, &r));
        md.push_str(&markdown_row(&s.to_string(), &r, &base));
        eprintln!(
            "sparsity {s}: accuracy {:.4}, capsules {}/{}, {} bytes, inference {:.1} ms",
            r.accuracy, r.alive, r.capsules, r.file_bytes, r.infer_ms
        );
        curves.push(s, &r, &base);
    }
    write_atomic(&args.out.join("sweep.csv"), csv.as_bytes())?;
    write_atomic(&args.out.join("sweep.md"), md.as_bytes())?;
    let title = chart_title(method, info.preset.as_deref(), &source.to_string());
    write_charts(&args.out, args.method, curves, &title)?;
    print!("{csv}");
    println!(
        "wrote {}, sweep.md, sweep.svg and sweep.png",
        args.out.join("sweep.csv").display()
    );
    Ok(())
}

/// A backbone for `--method backbone` that can reach every requested sparsity.
fn check_backbone_sparsities(args: &SweepArgs, model: &CapsNet) -> anyhow::Result<()> {
    super::prune::require_backbone(&args.model, model)?;
    // sparsity 0 is the model as it is
    for &s in args.sparsities.iter().filter(|s| **s > 0.0) {
        super::prune::check_backbone_target(&model.config, s).with_context(|| format!("--sparsities {s}"))?;
    }
    Ok(())
}

/// Every file a sweep writes in its folder (checked before the work).
fn output_files(method: &str, sparsities: &[f64]) -> Vec<String> {
    let models = sparsities.iter().map(|&s| model_file(method, s));
    ["sweep.csv", "sweep.md", "sweep.svg", "sweep.png"]
        .map(String::from)
        .into_iter()
        .chain(models)
        .collect()
}

/// The file a sweep writes the model of sparsity `s` to.
fn model_file(method: &str, s: f64) -> String {
    format!("{method}-{s}.safetensors")
}

/// The `--baseline` model, which must take the sweep's data (`source`).
fn load_baseline(
    path: &Path,
    data: &Dataset,
    source: &DataSource,
    device: &Device,
) -> anyhow::Result<CapsNet> {
    let (m, _) = load_model(path, device)?;
    data.check_fits(m.config.input(), m.config.classes)
        .with_context(|| format!("--baseline {}: dataset {source}", path.display()))?;
    Ok(m)
}

/// One line of `sweep.csv`.
fn csv_row(s: f64, method: &str, r: &Row) -> String {
    format!(
        "{s},{method},{:.4},{},{},{},{},{:.2},{:.3},{:.3},{:.3},{:.4}\n",
        r.accuracy,
        r.alive,
        r.capsules,
        r.types,
        r.file_bytes,
        r.mflops,
        r.train_step_ms,
        r.infer_ms,
        r.latency_ms,
        r.weight_sparsity
    )
}

/// The charted quantities, one point per sparsity; times and sizes as ratios to the baseline.
#[derive(Default)]
pub(super) struct Curves {
    accuracy: Vec<(f64, f64)>,
    alive: Vec<(f64, f64)>,
    infer: Vec<(f64, f64)>,
    size: Vec<(f64, f64)>,
}

impl Curves {
    /// Adds the point of sparsity `s`, measured as `r`, with ratios to `base`.
    pub(super) fn push(&mut self, s: f64, r: &Row, base: &Row) {
        self.accuracy.push((s, r.accuracy));
        self.alive.push((s, r.alive as f64 / r.capsules.max(1) as f64));
        // a baseline time rounded to 0 gives no ratio to draw
        if base.infer_ms > 0.0 {
            self.infer.push((s, r.infer_ms / base.infer_ms));
        }
        if base.file_bytes > 0 {
            self.size.push((s, r.file_bytes as f64 / base.file_bytes as f64));
        }
    }
}

/// "METHOD pruning of the PRESET model, DATA" (a dataset folder named by its last component).
fn chart_title(method: &str, preset: Option<&str>, source: &str) -> String {
    let name = Path::new(source)
        .file_name()
        .map_or(source.to_string(), |n| n.to_string_lossy().into_owned());
    format!(
        "{method} pruning of the {} model, {name}",
        preset.unwrap_or("custom")
    )
}

/// Writes `DIR/sweep.svg` and `DIR/sweep.png` of a sweep by `method` ("magnitude" or
/// "capsules").
pub(super) fn write_charts(dir: &Path, method: PruneMethod, c: Curves, title: &str) -> anyhow::Result<()> {
    let series = |name, points, color| Series { name, points, color };
    let series = [
        series("test accuracy", c.accuracy, [31, 119, 180]),
        series("alive capsules K/N", c.alive, [214, 39, 40]),
        series("inference time / baseline", c.infer, [44, 160, 44]),
        series("file size / baseline", c.size, [148, 103, 189]),
    ];
    // a ratio to a baseline of 0 is not drawn, nor named in the legend
    let series: Vec<Series> = series.into_iter().filter(|s| !s.points.is_empty()).collect();
    let x_label = match method {
        PruneMethod::Capsules => "requested sparsity (fraction of capsules)",
        PruneMethod::Magnitude => "requested sparsity (fraction of weights)",
        PruneMethod::Backbone => "requested sparsity (fraction of backbone FLOPs)",
    };
    let chart = Chart {
        title,
        x_label,
        y_label: "fraction, or ratio to the baseline",
        series: &series,
    };
    write_atomic(&dir.join("sweep.svg"), svg_chart(&chart)?.as_bytes())?;
    write_atomic(&dir.join("sweep.png"), &png_chart(&chart)?)?;
    Ok(())
}
