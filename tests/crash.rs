//! Crash safety: a run killed with SIGKILL while it writes checkpoints leaves a loadable
//! model, a full disk is a clear error that loses nothing already saved, and a diverging
//! run stops without writing a non-finite model.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::*;
use sparsecaps::export::load_model;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparsecaps"));
    c.env("NO_COLOR", "1");
    c
}

/// `train` of the tiny preset on the CPU (8 test images, batch 16) into `out`, plus `extra`.
fn tiny_train(out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args([
        "train",
        "--preset",
        "tiny",
        "--limit-test",
        "8",
        "--batch",
        "16",
        "--device",
        "cpu",
    ])
    .args(extra)
    .arg("--out")
    .arg(out);
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run sparsecaps")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A model file is loadable and all its weights are finite (the loader refuses others).
fn assert_loadable(path: &Path) {
    load_model(path, &Device::flex()).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
}

/// Whether a write of the model is under way: a temporary file beside it, or the model
/// file shorter than a complete one (`full` bytes).
fn write_in_progress(dir: &Path, full: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        name.starts_with(".model.safetensors.tmp") || (name == "model.safetensors" && len < full)
    })
}

#[test]
fn sigkill_during_checkpoint_writes_leaves_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let model = run_dir.join("model.safetensors");
    let mut rng = sparsecaps::rng::Rng::new(11);
    let mut kills_mid_write = 0;
    for round in 0..12 {
        // tiny epochs, so a checkpoint is written every few tens of milliseconds
        let mut child = tiny_train(&run_dir, &["--limit-train", "16", "--epochs", "10000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !model.exists() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(model.exists(), "round {round}: no checkpoint within two minutes");
        let full = std::fs::metadata(&model).unwrap().len();
        if round % 2 == 0 {
            // the moment a later checkpoint is being written
            let start = Instant::now();
            while !write_in_progress(&run_dir, full) && start.elapsed() < Duration::from_secs(30) {
                std::hint::spin_loop();
            }
            kills_mid_write += usize::from(write_in_progress(&run_dir, full));
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(200) as u64));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_loadable(&model);
    }
    // the targeted kills did land while a checkpoint was being written
    assert!(
        kills_mid_write >= 3,
        "only {kills_mid_write} kills landed mid-write"
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_saved_model_survives() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // a 5 MiB file system: room for one tiny model (3 MiB), not two
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=5m", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let src = dir.path().join("tiny.safetensors");
        let run_dir = dir.path().join("run");
        let out = tiny_train(&run_dir, &["--limit-train", "16", "--epochs", "1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::copy(run_dir.join("model.safetensors"), &src).unwrap();
        let first = small.join("a.safetensors");
        let out = run(&[
            "export",
            "--model",
            src.to_str().unwrap(),
            "--out",
            first.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let saved = std::fs::read(&first).unwrap();
        for target in ["b.safetensors", "a.safetensors"] {
            let out = run(&[
                "export",
                "--model",
                src.to_str().unwrap(),
                "--out",
                small.join(target).to_str().unwrap(),
            ]);
            let lines = stderr_lines(&out);
            assert_eq!(out.status.code(), Some(2), "{lines:?}");
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains("No space left"), "{lines:?}");
            // the earlier file is untouched and no temporary file is left behind
            assert_eq!(std::fs::read(&first).unwrap(), saved);
            let names: Vec<_> = std::fs::read_dir(&small)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("a.safetensors")]);
        }
        assert_loadable(&first);
    });
    let _ = Command::new("umount").arg(&small).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_diverging_run_rolls_back_then_stops_and_never_writes_nan() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let out = tiny_train(
        &run_dir,
        &["--limit-train", "32", "--epochs", "20", "--lr", "1e30"],
    )
    .output()
    .unwrap();
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("non-finite loss; back to the last finite state")),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with("error: training diverged"), "{last}");
    assert!(!last.contains("panicked"), "{lines:?}");
    let model = run_dir.join("model.safetensors");
    if model.exists() {
        assert_loadable(&model);
    }
}

#[test]
fn a_run_too_short_to_give_up_saves_only_finite_weights_and_metrics() {
    // two one-step epochs at a learning rate that blows the weights up: the margin loss
    // alone would hide the NaN outputs (its ReLUs make them 0)
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let out = tiny_train(
        &run_dir,
        &["--limit-train", "16", "--epochs", "2", "--lr", "1e30"],
    )
    .output()
    .unwrap();
    let lines = stderr_lines(&out);
    // rolled back, or refused at the epoch's evaluation: never a quiet success
    assert!(
        lines
            .iter()
            .any(|l| l.contains("non-finite loss") || l.starts_with("error: training diverged")),
        "the blow-up went unnoticed: {lines:?}"
    );
    if let Ok(metrics) = std::fs::read_to_string(run_dir.join("metrics.csv")) {
        let lower = metrics.to_lowercase();
        assert!(!lower.contains("nan") && !lower.contains("inf"), "{metrics}");
    }
    let model = run_dir.join("model.safetensors");
    if model.exists() {
        let (net, _) = load_model(&model, &Device::flex()).unwrap();
        for w in [
            sparsecaps::model::HostTensor::from_tensor(net.conv1_weight.val()),
            sparsecaps::model::HostTensor::from_tensor(net.digit_weight.val()),
        ] {
            assert!(w.values.iter().all(|v| v.is_finite()), "non-finite weights saved");
        }
    }
}

#[test]
fn an_epoch_whose_every_step_rolled_back_reports_no_training_loss() {
    // a learning rate past f32's range makes every update non-finite: each epoch's only
    // step is rolled back, the weights stay at their initial values and the test pass is
    // finite
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let out = tiny_train(
        &run_dir,
        &["--limit-train", "16", "--epochs", "2", "--lr", "1e45"],
    )
    .output()
    .unwrap();
    let lines = stderr_lines(&out);
    assert!(out.status.success(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("epoch 2: no training step kept (all rolled back)")),
        "{lines:?}"
    );
    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{metrics}");
    for row in rows {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(&cells[1..3], ["", ""], "{metrics}");
        assert!(cells[3].parse::<f64>().unwrap().is_finite(), "{metrics}");
    }
}
