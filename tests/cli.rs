//! The CLI as a user runs it: bad input gives one line on stderr and exit code 2,
//! and `train` -> `eval --json` works end to end.

use std::path::Path;
use std::process::{Command, Output};

fn sparsecaps(args: &[&str]) -> Output {
    sparsecaps_with(args, &[])
}

/// `sparsecaps` with these environment variables set too.
fn sparsecaps_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args(args)
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied())
        .output()
        .expect("run sparsecaps")
}

fn assert_bad_input(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("device:")).collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn write_idx_dir(dir: &Path, images: &[u8], labels: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", images),
        ("train-labels-idx1-ubyte", labels),
        ("t10k-images-idx3-ubyte", images),
        ("t10k-labels-idx1-ubyte", labels),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn idx_images(count: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x803u32, count, 28, 28] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend(std::iter::repeat_n(0u8, count as usize * 784));
    v
}

fn idx_labels(count: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x801u32, count] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend(std::iter::repeat_n(1u8, count as usize));
    v
}

#[test]
fn unknown_preset_and_device_are_one_line_errors() {
    let out = sparsecaps(&["train", "--preset", "huge", "--out", "x"]);
    assert_bad_input(
        &out,
        "invalid value 'huge' for '--preset <PRESET>' [possible values: paper, small, tiny, resnet-caps, mobilenet-caps]",
    );
    let out = sparsecaps(&["bench", "--device", "tpu"]);
    assert_bad_input(
        &out,
        "invalid value 'tpu' for '--device <DEVICE>' [possible values: auto, cpu, wgpu]",
    );
}

/// A training batch whose votes would not fit in one of the wgpu device's buffers (128 MiB
/// on lavapipe) is refused before training, with the largest batch that fits.
#[test]
fn a_batch_over_the_devices_buffer_limit_is_a_one_line_error() {
    use sparsecaps::device::{DeviceChoice, max_buffer_bytes, select};
    let Ok(gpu) = select(DeviceChoice::Wgpu) else {
        assert!(
            std::env::var_os("SPARSECAPS_REQUIRE_WGPU").is_none(),
            "wgpu required"
        );
        return;
    };
    let limit = max_buffer_bytes(&gpu.device).expect("the wgpu device's limit");
    // the paper preset's votes: 1,152 x 10 x 16 f32 values per image
    let fits = limit / (184_320 * 4);
    if fits >= 4096 {
        eprintln!("skipping: {gpu} holds {limit} bytes per buffer");
        return;
    }
    let batch = (fits + 1).to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = sparsecaps(&[
        "train",
        "--preset",
        "paper",
        "--batch",
        &batch,
        "--limit-train",
        "8",
        "--limit-test",
        "8",
        "--device",
        "wgpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_bad_input(&out, &format!("use --batch {fits} or less"));
}

#[test]
fn missing_and_corrupt_model_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let out = sparsecaps(&["eval", "--model", missing.to_str().unwrap(), "--device", "cpu"]);
    assert_bad_input(&out, "nope.safetensors");
    let corrupt = dir.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let out = sparsecaps(&["eval", "--model", corrupt.to_str().unwrap(), "--device", "cpu"]);
    assert_bad_input(&out, "not a valid safetensors file");
}

#[test]
fn broken_idx_folders_are_one_line_errors() {
    let base = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        ("magic", idx_labels(4), idx_labels(4), "wrong magic"),
        (
            "truncated",
            idx_images(4)[..1000].to_vec(),
            idx_labels(4),
            "header promises",
        ),
        ("count", idx_images(4), idx_labels(3), "4 images but 3 labels"),
    ];
    for (name, images, labels, needle) in cases {
        let dir = base.path().join(name);
        write_idx_dir(&dir, &images, &labels);
        let run = base.path().join(format!("run-{name}"));
        let out = sparsecaps(&[
            "train",
            "--data",
            dir.to_str().unwrap(),
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--out",
            run.to_str().unwrap(),
        ]);
        assert_bad_input(&out, needle);
    }
    let out = sparsecaps(&[
        "train",
        "--data",
        "/nonexistent/idx",
        "--device",
        "cpu",
        "--out",
        "x",
    ]);
    assert_bad_input(&out, "no such folder");
    // a Fashion-MNIST folder named by its variable is reported when wrong, not skipped
    let out = sparsecaps_with(
        &[
            "train",
            "--data",
            "fashion-mnist",
            "--device",
            "cpu",
            "--out",
            "x",
        ],
        &[("SPARSECAPS_FASHION_MNIST", "/nonexistent/fashion")],
    );
    assert_bad_input(&out, "/nonexistent/fashion: no such folder");
}

#[test]
fn train_then_eval_json_reaches_ninety_percent() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("RUN");
    let run_s = run.to_str().unwrap();
    let out = sparsecaps(&[
        "train",
        "--data",
        "mnist",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--limit-train",
        "2000",
        "--limit-test",
        "1000",
        "--device",
        "cpu",
        "--out",
        run_s,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = run.join("model.safetensors");
    let out = sparsecaps(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        "mnist",
        "--limit-test",
        "1000",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(json["accuracy"].as_f64().unwrap() >= 0.90, "{json}");
    assert_eq!(json["images"], 1000);
    assert_eq!(json["capsules"], 288);

    prune_export_and_inspect(&run, &model);

    // continue training from the model: it starts where it was, not from scratch
    let more = dir.path().join("MORE");
    let out = sparsecaps(&[
        "train",
        "--init",
        model.to_str().unwrap(),
        "--preset",
        "paper",
        "--epochs",
        "1",
        "--lr",
        "3e-4",
        "--limit-train",
        "200",
        "--limit-test",
        "1000",
        "--device",
        "cpu",
        "--out",
        more.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(more.join("metrics.csv")).unwrap();
    let test_accuracy: f64 = metrics
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        test_accuracy >= 0.90,
        "200 more images from a 92% model: {metrics}"
    );
    let config = std::fs::read_to_string(more.join("config.json")).unwrap();
    assert!(
        config.contains("\"types\": 8"),
        "the model's config, not --preset's: {config}"
    );
    assert!(config.contains("\"init\": \""), "{config}");
}

fn last_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// prune -> export --compact -> eval / inspect / sweep on the trained tiny model.
fn prune_export_and_inspect(run: &Path, model: &Path) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let pruned = run.join("pruned.safetensors");
    let compact = run.join("compact.safetensors");
    let prune = |model: &Path, sparsity: &str, out: &Path| {
        sparsecaps(&[
            "prune",
            "--model",
            &s(model),
            "--sparsity",
            sparsity,
            "--method",
            "magnitude",
            "--limit-test",
            "500",
            "--device",
            "cpu",
            "--out",
            &s(out),
        ])
    };
    let out = prune(model, "0.95", &pruned);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = sparsecaps(&[
        "export",
        "--model",
        &s(&pruned),
        "--compact",
        "--out",
        &s(&compact),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dense_bytes = std::fs::metadata(&pruned).unwrap().len();
    let compact_bytes = std::fs::metadata(&compact).unwrap().len();
    assert!(
        dense_bytes >= 5 * compact_bytes,
        "{dense_bytes} vs {compact_bytes}"
    );
    let eval = |m: &Path| {
        last_json(&sparsecaps(&[
            "eval",
            "--model",
            &s(m),
            "--limit-test",
            "500",
            "--device",
            "cpu",
            "--json",
        ]))
    };
    let (a, b) = (eval(&pruned), eval(&compact));
    assert!(
        (a["accuracy"].as_f64().unwrap() - b["accuracy"].as_f64().unwrap()).abs() <= 0.001,
        "{a} {b}"
    );
    assert_eq!(a["alive_capsules"], b["alive_capsules"]);
    assert!((a["sparsity"].as_f64().unwrap() - 0.95).abs() < 1e-4, "{a}");

    // a compact model prunes further, from its dense layout
    let further = run.join("further.safetensors");
    let out = prune(&compact, "0.97", &further);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a compact model"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = eval(&further);
    assert!((c["sparsity"].as_f64().unwrap() - 0.97).abs() < 1e-3, "{c}");
    assert!(
        c["alive_capsules"].as_u64().unwrap() <= b["alive_capsules"].as_u64().unwrap(),
        "{c} {b}"
    );

    // a compact model trains as it is: still compact, its pruned weights still zero
    let train_from = |init: &Path, dir: &str, more: &[&str]| {
        let mut args = vec!["train", "--init"];
        let init = s(init);
        let out_dir = s(&run.join(dir));
        args.extend([init.as_str(), "--limit-train", "64", "--limit-test", "500"]);
        args.extend(more);
        args.extend(["--device", "cpu", "--out", out_dir.as_str()]);
        let out = sparsecaps(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        eval(&run.join(dir).join("model.safetensors"))
    };
    let t = train_from(&compact, "from-compact", &["--epochs", "1"]);
    assert_ne!(t["loss"], b["loss"], "it did not train");
    assert_eq!(t["alive_capsules"], b["alive_capsules"]);
    assert!((t["sparsity"].as_f64().unwrap() - 0.95).abs() < 1e-4, "{t}");
    let trained = run.join("from-compact").join("model.safetensors");
    let trained_bytes = std::fs::metadata(&trained).unwrap().len();
    assert!(
        trained_bytes <= compact_bytes + 4096,
        "{trained_bytes} vs {compact_bytes}"
    );
    // a pruned (masked) model keeps its zeros: through an epoch and a resume, and through
    // a gradual magnitude pruning schedule whose target is below its sparsity
    let t = train_from(&pruned, "from-pruned", &["--epochs", "1"]);
    assert_ne!(t["loss"], a["loss"], "it did not train");
    let resumed = run.join("from-pruned");
    let out = sparsecaps(&["train", "--resume", &s(&resumed), "--epochs", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(resumed.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let t = eval(&resumed.join("model.safetensors"));
    assert!((t["sparsity"].as_f64().unwrap() - 0.95).abs() < 1e-4, "{t}");
    let gmp = ["--epochs", "2", "--prune", "gmp", "--target-sparsity", "0.5"];
    let t = train_from(&pruned, "gmp-from-pruned", &gmp);
    assert!(t["sparsity"].as_f64().unwrap() >= 0.95 - 1e-4, "{t}");

    // a damaged compact file is refused with one line
    let broken = run.join("broken.safetensors");
    let bytes = std::fs::read(&compact).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() - 100]).unwrap();
    let out = sparsecaps(&["eval", "--model", &s(&broken), "--device", "cpu"]);
    assert_bad_input(&out, "broken.safetensors");

    // structured pruning sweep in miniature
    let sweep_dir = run.join("sweep");
    let out = sparsecaps(&[
        "sweep",
        "--model",
        &s(model),
        "--sparsities",
        "0,0.75",
        "--method",
        "capsules",
        "--limit-test",
        "200",
        "--repeat",
        "1",
        "--device",
        "cpu",
        "--out",
        &s(&sweep_dir),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(sweep_dir.join("sweep.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!(rows[0][0], "sparsity");
    assert_eq!(rows[2][3], "72", "alive capsules at 75% capsule sparsity: {csv}");
    assert!(sweep_dir.join("sweep.png").is_file());
    let md = std::fs::read_to_string(sweep_dir.join("sweep.md")).unwrap();
    let md_rows: Vec<&str> = md.lines().collect();
    assert_eq!(
        md_rows.len(),
        5,
        "header, rule, baseline and two sparsities: {md}"
    );
    assert!(md_rows[2].starts_with("| baseline | "), "{md}");
    assert!(
        md_rows[4].contains("72/288 (0.25×)"),
        "K/N with its ratio to dense: {md}"
    );

    // inspect a test digit written as PNG
    let png = run.join("digit.png");
    let data = sparsecaps::data::Dataset::load(&sparsecaps::data::DataSource::Mnist).unwrap();
    let img = image::GrayImage::from_raw(28, 28, data.test.pixels[..784].to_vec()).unwrap();
    img.save(&png).unwrap();
    let json = last_json(&sparsecaps(&[
        "inspect",
        "--model",
        &s(&compact),
        "--image",
        &s(&png),
        "--json",
    ]));
    assert_eq!(json["lengths"].as_array().unwrap().len(), 10);
    assert_eq!(json["top_capsules"].as_array().unwrap().len(), 10);
    // the CLI reads the image as the app does (centred as a drawn digit)
    let device = burn::prelude::Device::flex();
    let (net, _) = sparsecaps::export::load_model(&compact, &device).unwrap();
    let pixels = sparsecaps::inspect::load_input(&png, (1, 28, 28), true).unwrap();
    let app = sparsecaps::inspect::inspect_digit(&net, &pixels, 10, &device);
    for (cli, app) in json["lengths"].as_array().unwrap().iter().zip(&app.lengths) {
        assert!(
            (cli.as_f64().unwrap() - f64::from(*app)).abs() < 1e-5,
            "{json} vs {:?}",
            app
        );
    }
}

#[test]
fn bench_times_the_apps_slider_and_inspection() {
    let json = last_json(&sparsecaps(&[
        "bench", "--preset", "tiny", "--app", "--repeat", "1", "--batch", "8", "--device", "cpu", "--json",
    ]));
    for key in ["slider_ms", "slider_capsules_ms", "inspect_ms", "latency_ms"] {
        let v = json[key].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{key}: {json}");
    }
    assert_eq!(json["capsules"], 288);
}

#[test]
fn bench_profile_times_every_stage_of_a_training_step() {
    let out = sparsecaps(&[
        "bench",
        "--preset",
        "tiny",
        "--profile",
        "--repeat",
        "1",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("training step by stage at batch 4"), "{stdout}");
    let json = last_json(&out);
    let stages = json["profile_ms"].as_object().expect("profile_ms");
    for stage in [
        "conv1",
        "primary conv",
        "votes",
        "routing",
        "decoder + loss",
        "backward",
        "optimizer step",
    ] {
        let ms = stages[stage].as_f64().unwrap_or(-1.0);
        assert!(ms >= 0.0, "{stage}: {json}");
    }
    assert!(json["train_step_ms"].as_f64().unwrap_or(0.0) > 0.0);
}

/// A sweep.csv as `sweep --method capsules` writes it.
const SWEEP_CSV: &str = "sparsity,method,accuracy,alive_capsules,capsules,alive_types,file_bytes,\
mflops_per_image,train_step_ms,infer_ms,latency_ms,weight_sparsity
0,capsules,0.9884,576,576,16,10604968,107.39,448.3,134.9,2.400,0.0000
0.5,capsules,0.9884,288,576,8,6474784,58.42,269.3,81.8,1.989,0.4975
0.9,capsules,0.9830,58,576,2,3305664,21.63,159.0,50.5,1.343,0.8793
";

#[test]
fn plot_redraws_a_sweeps_chart_and_refuses_bad_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("sweep.csv"), SWEEP_CSV).unwrap();
    let out = sparsecaps(&["plot", d, "--title", "capsules pruning of the tiny model, mnist"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("sweep.svg")).unwrap();
    for text in [
        "capsules pruning of the tiny model, mnist",
        "requested sparsity (fraction of capsules)",
        "test accuracy",
        "file size / baseline",
    ] {
        assert!(svg.contains(text), "{text} missing: {svg}");
    }
    let png = image::open(dir.path().join("sweep.png")).unwrap();
    assert!(png.width() > 600 && png.height() > 300);

    // without --title, the method from the CSV
    let out = sparsecaps(&["plot", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("sweep.svg")).unwrap();
    assert!(svg.contains("\ncapsules pruning\n"), "{svg}");

    // a damaged row, a foreign CSV, a bad sweep.md and a folder without a sweep are one line each
    let bad = SWEEP_CSV.replace("0.5,capsules,0.9884", "0.5,capsules,lots");
    std::fs::write(dir.path().join("sweep.csv"), bad).unwrap();
    assert_bad_input(
        &sparsecaps(&["plot", d]),
        "sweep.csv: line 3: accuracy 'lots' is not a finite number",
    );
    std::fs::write(dir.path().join("sweep.csv"), "a,b\n1,2\n").unwrap();
    assert_bad_input(&sparsecaps(&["plot", d]), "sweep.csv: line 1 is not the header");
    std::fs::write(dir.path().join("sweep.csv"), SWEEP_CSV).unwrap();
    std::fs::write(dir.path().join("sweep.md"), "| x |\n|---|\n| 1 |\n").unwrap();
    assert_bad_input(&sparsecaps(&["plot", d]), "sweep.md: no baseline row");
    let missing = dir.path().join("nope");
    assert_bad_input(&sparsecaps(&["plot", missing.to_str().unwrap()]), "sweep.csv");

    // a baseline a million times smaller than the rows: a tall axis with a few ticks (it
    // used to draw a tick every 0.2 up to the top, and never finished)
    std::fs::remove_file(dir.path().join("sweep.md")).unwrap();
    let tall = SWEEP_CSV.replacen(",10604968,", ",10,", 1);
    assert_ne!(tall, SWEEP_CSV);
    std::fs::write(dir.path().join("sweep.csv"), tall).unwrap();
    let out = sparsecaps(&["plot", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // a baseline size rounded to 0.00 MB: no size ratio, and none named in the legend
    std::fs::write(dir.path().join("sweep.csv"), SWEEP_CSV).unwrap();
    let md = "| capsules sparsity | accuracy | file | inference b128 |\n|---|---|---|---|\n\
              | baseline | 99.08% | 0.00 MB (1.00×) | 128 ms (1.00×) |\n";
    std::fs::write(dir.path().join("sweep.md"), md).unwrap();
    let out = sparsecaps(&["plot", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("sweep.svg")).unwrap();
    assert!(svg.contains("inference time / baseline") && !svg.contains("file size / baseline"));
}

#[test]
fn plot_draws_a_pruning_runs_capsules_against_sparsity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let header = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,epoch_s,sparsity,\
sparsity_conv1,sparsity_primary,sparsity_digit,alive_capsules,capsules,alive_types";
    let rows = "1,0.1,0.9,0.05,0.98,1e-3,9.0,0.50,0.2,0.6,0.3,576,576,16\n\
2,0.1,0.9,0.05,0.97,1e-3,9.0,0.97,0.9,0.99,0.95,288,576,8\n";
    std::fs::write(dir.path().join("metrics.csv"), format!("{header}\n{rows}")).unwrap();
    let out = sparsecaps(&["plot", d, "--title", "LOBSTER, tiny"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("run.svg")).unwrap();
    for text in ["LOBSTER, tiny", "weight sparsity reached", "alive capsules K/N"] {
        assert!(svg.contains(text), "{text} missing: {svg}");
    }
    assert!(image::open(dir.path().join("run.png")).unwrap().width() > 600);
    // a dense run has no curve against sparsity
    let dense = rows.replace(",0.50,", ",0,").replace(",0.97,0.9,", ",0,0.9,");
    std::fs::write(dir.path().join("metrics.csv"), format!("{header}\n{dense}")).unwrap();
    assert_bad_input(&sparsecaps(&["plot", d]), "the run pruned nothing");
}
