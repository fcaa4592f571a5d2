//! The trainer thread end to end: a smoke run that must learn, stop mid-epoch, pause,
//! checkpoints, and the wgpu path on whatever adapter the machine has.

use std::time::Duration;

use burn::prelude::*;
use sparsecaps::data::DataSource;
use sparsecaps::device::{self, DeviceChoice};
use sparsecaps::export::load_model;
use sparsecaps::model::{CapsNet, Preset};
use sparsecaps::train::messages::TrainError;
use sparsecaps::train::{Command, Event, TrainRequest, Trainer};

fn tiny_request(out: Option<std::path::PathBuf>) -> TrainRequest {
    TrainRequest {
        data: DataSource::Mnist,
        preset: Preset::Tiny,
        epochs: 1,
        device: DeviceChoice::Cpu,
        limit_train: Some(2000),
        limit_test: Some(1000),
        batch: Preset::Tiny.default_batch(),
        seed: 1,
        out_dir: out,
        ..TrainRequest::default()
    }
}

/// Collects events until the run ends.
fn run_to_end(trainer: &Trainer) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = trainer.recv_event() {
        let end = matches!(e, Event::Finished { .. } | Event::Failed(_));
        events.push(e);
        if end {
            break;
        }
    }
    events
}

#[test]
fn tiny_training_smoke_test_learns_mnist_and_writes_a_loadable_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let trainer = Trainer::spawn(None).unwrap();
    trainer
        .send(Command::Start(Box::new(tiny_request(Some(run.clone())))))
        .unwrap();
    let events = run_to_end(&trainer);
    let epoch = events
        .iter()
        .find_map(|e| match e {
            Event::Epoch(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no epoch event: {events:?}"));
    assert!(
        epoch.test_accuracy >= 0.90,
        "test accuracy {}",
        epoch.test_accuracy
    );
    assert!(events.iter().any(|e| matches!(e, Event::Step(_))));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Checkpoint { epoch: 1, .. }))
    );
    assert!(matches!(
        events.last(),
        Some(Event::Finished {
            stopped: false,
            epochs: 1,
            ..
        })
    ));
    for f in ["model.safetensors", "config.json", "metrics.csv"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let (model, info) = load_model(&run.join("model.safetensors"), &Device::flex()).unwrap();
    assert_eq!(info.epochs, Some(1));
    assert_eq!(info.test_accuracy, Some(epoch.test_accuracy));
    assert_eq!(model.config, Preset::Tiny.config());
    compact_trained_model_matches_its_masked_dense_model(model);
}

/// Compaction of the trained tiny model, pruned by capsules (dead types) and by magnitude
/// (dead rows), reproduces the masked dense model's outputs within 1e-5.
fn compact_trained_model_matches_its_masked_dense_model(model: CapsNet) {
    use sparsecaps::prune::capsules::{capsule_importance, capsule_masks, choose_removed, kill_type_biases};
    use sparsecaps::prune::{Masks, apply_masks, compact, magnitude_masks, survival};
    let dev = Device::flex();
    let data = sparsecaps::data::Dataset::load(&DataSource::Mnist).unwrap();
    let (x, _) = data.test.batch(&(0..100).collect::<Vec<_>>(), &dev);
    let importance = capsule_importance(&model, x.clone());
    let (removed, dead) = choose_removed(&importance, model.config.types, 0.6);
    let by_caps = kill_type_biases(
        apply_masks(
            model.clone(),
            &capsule_masks(&model, &removed, &dead).to_device(&dev),
        ),
        &dead,
    );
    let magnitude = magnitude_masks(&by_caps, 0.5);
    let both = Masks {
        conv1: magnitude.conv1,
        primary: magnitude.primary,
        digit: magnitude.digit,
    };
    let pruned = apply_masks(by_caps, &both.to_device(&dev));
    let small = compact(&pruned).unwrap();
    assert!(small.capsules() < model.capsules() && small.primary_types() < model.config.types);
    assert_eq!(survival(&small).map, survival(&pruned).map);
    let (a, b) = (pruned.forward(x.clone(), false), small.forward(x, false));
    let diff = (a.lengths - b.lengths).abs().max().into_scalar::<f32>();
    assert!(diff <= 1e-5, "compact differs by {diff}");
    let diff = (a.class_caps - b.class_caps).abs().max().into_scalar::<f32>();
    assert!(diff <= 1e-5, "class capsules differ by {diff}");
}

#[test]
fn stop_ends_a_run_mid_epoch_and_pause_holds_it() {
    let trainer = Trainer::spawn(None).unwrap();
    let mut req = tiny_request(None);
    req.limit_train = Some(20_000);
    req.readback_every = 1;
    trainer.send(Command::Start(Box::new(req))).unwrap();
    // wait for the first progress report, then pause
    loop {
        match trainer.recv_event() {
            Some(Event::Step(_)) => break,
            Some(Event::Failed(e)) => panic!("{e}"),
            Some(_) => {}
            None => panic!("trainer ended"),
        }
    }
    trainer.send(Command::Pause).unwrap();
    let mut steps_after_pause = None;
    loop {
        match trainer.recv_event() {
            Some(Event::Paused) => break,
            Some(Event::Step(s)) => steps_after_pause = Some(s.global_step),
            Some(_) => {}
            None => panic!("trainer ended"),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // nothing moves while paused
    while let Some(e) = trainer.try_event() {
        assert!(
            !matches!(e, Event::Step(_)),
            "a step ran while paused ({steps_after_pause:?})"
        );
    }
    trainer.send(Command::Resume).unwrap();
    trainer.send(Command::Stop).unwrap();
    let events = run_to_end(&trainer);
    assert!(events.iter().any(|e| matches!(e, Event::Resumed)));
    assert!(
        matches!(
            events.last(),
            Some(Event::Finished {
                stopped: true,
                epochs: 0,
                ..
            })
        ),
        "{events:?}"
    );
    // the thread takes another run after a stop
    let mut req = tiny_request(None);
    req.limit_train = Some(64);
    req.limit_test = Some(64);
    trainer.send(Command::Start(Box::new(req))).unwrap();
    assert!(matches!(
        run_to_end(&trainer).last(),
        Some(Event::Finished { stopped: false, .. })
    ));
}

fn epochs(events: &[Event]) -> Vec<sparsecaps::train::EpochMetrics> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Epoch(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn lobster_prunes_at_threshold_steps_and_keeps_pruned_weights_at_zero() {
    use sparsecaps::train::messages::PruneSchedule;
    let trainer = Trainer::spawn(None).unwrap();
    let mut req = tiny_request(None);
    req.epochs = 2;
    req.prune = PruneSchedule::Lobster {
        lambda: 1e-3,
        pwe: 0,
        twt: 0.05,
        lambda_decay: 1.0,
        tolerance: 0.0,
    };
    req.validation = Some(500);
    trainer.send(Command::Start(Box::new(req))).unwrap();
    let events = run_to_end(&trainer);
    let pruned: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Pruned { sparsity, .. } => Some(*sparsity),
            _ => None,
        })
        .collect();
    assert_eq!(pruned.len(), 2, "{events:?}");
    assert!(pruned[0] > 0.0 && pruned[1] >= pruned[0], "{pruned:?}");
    let m = epochs(&events);
    assert_eq!(m.len(), 2);
    // after the threshold step the reported sparsity is that of the masks
    assert!(
        (m[0].sparsity - pruned[0]).abs() < 1e-9,
        "{} vs {}",
        m[0].sparsity,
        pruned[0]
    );
    // epoch 2 trained under epoch 1's masks: nothing pruned came back
    assert!(m[1].sparsity >= m[0].sparsity);
    assert!(m[1].test_accuracy > 0.8, "{}", m[1].test_accuracy);
    // training used 1,500 images: 500 were held out for validation
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Started {
            train_images: 1500,
            ..
        }
    )));
}

#[test]
fn gradual_magnitude_pruning_follows_the_cubic_schedule() {
    use sparsecaps::train::messages::{PruneSchedule, gmp_sparsity};
    let trainer = Trainer::spawn(None).unwrap();
    let mut req = tiny_request(None);
    req.epochs = 2;
    req.limit_train = Some(500);
    req.limit_test = Some(200);
    req.prune = PruneSchedule::Gmp { target: 0.8 };
    trainer.send(Command::Start(Box::new(req))).unwrap();
    let m = epochs(&run_to_end(&trainer));
    assert_eq!(m.len(), 2);
    for (e, metrics) in m.iter().enumerate() {
        let want = gmp_sparsity(0.8, e + 1, 2);
        assert!(
            (metrics.sparsity - want).abs() < 1e-4,
            "epoch {}: {} vs {want}",
            e + 1,
            metrics.sparsity
        );
    }
}

/// A folder of 32x32 colour images (IDX magic 0x804): the model takes its input size and
/// channels from the data.
#[test]
fn colour_32x32_images_train_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (n, side, ch) = (48u32, 32u32, 3u32);
    let mut images = Vec::new();
    for w in [0x804u32, n, side, side, ch] {
        images.extend_from_slice(&w.to_be_bytes());
    }
    let mut labels = Vec::new();
    for w in [0x801u32, n] {
        labels.extend_from_slice(&w.to_be_bytes());
    }
    for i in 0..n {
        let class = (i % 10) as u8;
        labels.push(class);
        for y in 0..side {
            for x in 0..side {
                let on = y / 3 == u32::from(class) && x > 4 && x < 28;
                images.extend_from_slice(&[if on { 255 } else { 0 }, (x * 8) as u8, class * 20]);
            }
        }
    }
    for (name, bytes) in [
        ("train-images-idx3-ubyte", &images),
        ("train-labels-idx1-ubyte", &labels),
        ("t10k-images-idx3-ubyte", &images),
        ("t10k-labels-idx1-ubyte", &labels),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let run = dir.path().join("run");
    let trainer = Trainer::spawn(None).unwrap();
    let mut req = tiny_request(Some(run.clone()));
    req.data = DataSource::Dir(dir.path().into());
    trainer.send(Command::Start(Box::new(req))).unwrap();
    let events = run_to_end(&trainer);
    assert!(
        matches!(events.last(), Some(Event::Finished { stopped: false, .. })),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Started { capsules: 512, .. })),
        "8 types x 8x8 grid"
    );
    let (model, _) = load_model(&run.join("model.safetensors"), &Device::flex()).unwrap();
    assert_eq!(
        (model.config.in_channels, model.config.height, model.config.width),
        (3, 32, 32)
    );
}

#[test]
fn a_missing_dataset_is_reported_as_a_failure_event() {
    let trainer = Trainer::spawn(None).unwrap();
    let mut req = tiny_request(None);
    req.data = DataSource::Dir("/nonexistent/data".into());
    trainer.send(Command::Start(Box::new(req))).unwrap();
    match run_to_end(&trainer).last() {
        Some(Event::Failed(e)) => {
            assert!(matches!(e, TrainError::Data(_)), "{e:?}");
            assert!(e.to_string().contains("no such folder"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Values of a tensor on the host.
fn host_values<const R: usize>(t: Tensor<R>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// `got` agrees with `want` within 1e-4 of the larger of 1 and `want`'s largest magnitude.
fn assert_agree(name: &str, want: &[f32], got: &[f32]) {
    assert_eq!(want.len(), got.len(), "{name}: sizes");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{name}: cpu and wgpu differ by {worst} (scale {scale})"
    );
}

/// Forward pass in training mode, losses and every parameter's gradient on `device` for
/// the first four test digits.
fn forward_backward(device: &Device) -> Vec<(String, Vec<f32>)> {
    let ad = device.clone().autodiff();
    let model = CapsNet::init(&Preset::Tiny.config(), 3, &ad).unwrap();
    let data = sparsecaps::data::Dataset::mnist_test().unwrap();
    let (x, y) = data.batch(&[0, 1, 2, 3], &ad);
    let out = model.forward(x.clone(), false);
    let parts = model.loss(&out, x, y);
    let mut got = vec![
        ("lengths".to_string(), host_values(out.lengths.clone().detach())),
        (
            "margin loss".to_string(),
            host_values(parts.margin.clone().detach()),
        ),
        (
            "total loss".to_string(),
            host_values(parts.total.clone().detach()),
        ),
    ];
    let grads = parts.total.backward();
    let grad = |name: &str, g: Option<Tensor<4>>| (format!("grad {name}"), host_values(g.unwrap()));
    got.push(grad("conv1", model.conv1_weight.val().grad(&grads)));
    got.push(grad("primary", model.primary_weight.val().grad(&grads)));
    got.push(grad(
        "digit",
        model.digit_weight.val().grad(&grads).map(|g| g.unsqueeze()),
    ));
    got.push(grad(
        "digit bias",
        model.digit_bias.val().grad(&grads).map(|g| g.unsqueeze()),
    ));
    for (i, layer) in model.decoder.iter().enumerate() {
        let g = layer.weight.val().grad(&grads).map(|g| g.unsqueeze());
        got.push(grad(&format!("decoder {i}"), g));
    }
    got
}

/// The wgpu backend on whatever adapter exists (lavapipe in CI) computes the tiny model's
/// forward pass, losses and gradients as the CPU backend does.
#[test]
fn wgpu_forward_and_backward_match_cpu() {
    let gpu = match device::select(DeviceChoice::Wgpu) {
        Ok(d) => d,
        Err(e) => {
            assert!(
                std::env::var_os("SPARSECAPS_REQUIRE_WGPU").is_none(),
                "wgpu required but unavailable: {e}"
            );
            eprintln!("skipping: {e}");
            return;
        }
    };
    eprintln!("wgpu device: {gpu}");
    let want = forward_backward(&Device::flex());
    let got = forward_backward(&gpu.device);
    assert_eq!(want.len(), got.len());
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        assert_agree(name, w, g);
    }
    // the gradients are not all zero, so agreeing says something
    assert!(want.iter().skip(3).all(|(_, g)| g.iter().any(|v| *v != 0.0)));
}

/// Trains the tiny preset through the CLI into `out` with `extra` flags; the run must
/// succeed, and its output is returned.
fn cli_train(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--limit-train",
            "96",
            "--limit-test",
            "16",
            "--batch",
            "16",
            "--device",
            "cpu",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Resumes the run in `dir` for `epochs` epochs in all.
fn cli_resume(dir: &std::path::Path, epochs: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args(["train", "--epochs", epochs, "--resume"])
        .arg(dir)
        .output()
        .unwrap()
}

fn weights(path: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let (m, _) = sparsecaps::export::load_model(path, &Device::flex()).unwrap();
    let mut named: Vec<(String, Vec<f32>)> = m.to_named().into_iter().map(|(n, t)| (n, t.values)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn two_epochs_straight_equal_one_epoch_then_a_resume() {
    for prune in [
        vec![],
        vec![
            "--prune",
            "lobster",
            "--lambda",
            "1e-3",
            "--pwe",
            "0",
            "--twt",
            "0.05",
            "--augment",
            "shift",
        ],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
        cli_train(&straight, &[&["--epochs", "2"], prune.as_slice()].concat());
        cli_train(&split, &[&["--epochs", "1"], prune.as_slice()].concat());
        let o = cli_resume(&split, "2");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (
            weights(&straight.join("model.safetensors")),
            weights(&split.join("model.safetensors")),
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{prune:?}: {name} differs after a resume");
        }
        // metrics.csv goes on, and only the last checkpoint's resume pair is kept
        let csv = std::fs::read_to_string(split.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        let straight_csv = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
        let col = |s: &str, i: usize| -> Vec<String> {
            s.lines()
                .skip(1)
                .map(|l| l.split(',').nth(i).unwrap().to_string())
                .collect()
        };
        assert_eq!(col(&csv, 3), col(&straight_csv, 3), "test loss per epoch");
        let mut pair: Vec<String> = std::fs::read_dir(split.join("resume"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        pair.sort();
        assert_eq!(pair, ["epoch-2.bpk", "epoch-2.json"]);
        // a finished run asks for more epochs; a folder that is no run is refused
        let o = cli_resume(&split, "2");
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("already trained 2 of 2"));
    }
    let o = cli_resume(std::path::Path::new("/nonexistent-run"), "2");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_resumed_run_keeps_its_device_unless_told_another_and_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    cli_train(&run, &["--epochs", "1"]);
    let config = || -> serde_json::Value {
        let text = std::fs::read_to_string(run.join("config.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let device = || config()["device"].as_str().unwrap().to_string();
    assert_eq!(device(), "cpu");
    let o = cli_resume(&run, "2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(device(), "cpu");
    // a run from fresh weights still says so: the checkpoint it resumed from is not its
    // `init`
    assert!(config()["init"].is_null(), "{}", config());
    // version 1 of the resume record (before 2026-11-29) recorded the checkpoint as the
    // start: the next resume drops it
    let record = run.join("resume").join("epoch-2.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(v["version"], 2);
    v["version"] = serde_json::json!(1);
    v["request"]["init"] = serde_json::json!(run.join("model.safetensors"));
    std::fs::write(&record, serde_json::to_string(&v).unwrap()).unwrap();
    let o = cli_resume(&run, "3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(config()["init"].is_null(), "{}", config());
    // ... also when it was written as typed, relative to another working directory
    let record = run.join("resume").join("epoch-3.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    v["version"] = serde_json::json!(1);
    v["request"]["init"] = serde_json::json!("elsewhere/run/model.safetensors");
    std::fs::write(&record, serde_json::to_string(&v).unwrap()).unwrap();
    let o = cli_resume(&run, "4");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(config()["init"].is_null(), "{}", config());
    // auto picks the CPU on a machine without a hardware GPU, so the run trains either way
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args(["train", "--epochs", "5", "--device", "auto", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(device(), "auto");
}

#[test]
fn the_rem_recipe_in_miniature_prunes_every_epoch_without_a_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("rem");
    cli_train(
        &run,
        &[
            "--recipe",
            "rem",
            "--validation",
            "16",
            "--patience",
            "1",
            "--epochs",
            "3",
        ],
    );
    let (model, info) =
        sparsecaps::export::load_model(&run.join("model.safetensors"), &Device::flex()).unwrap();
    assert!(model.decoder.is_empty(), "the recipe trains without a decoder");
    let epochs = info.epochs.unwrap();
    // the recipe's settings are what the run recorded
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("resume").join(format!("epoch-{epochs}.json"))).unwrap(),
    )
    .unwrap();
    let r = &state["request"];
    assert_eq!(r["batch"], 128);
    assert_eq!(r["lr"], 1e-3);
    assert_eq!(r["lr_decay"], 0.99);
    let lobster = &r["prune"]["Lobster"];
    assert_eq!(lobster["lambda"], 1e-4);
    assert_eq!(lobster["lambda_decay"], 0.99);
    assert_eq!(lobster["pwe"], 0);
    assert_eq!(lobster["twt"], 0.0);
    assert_eq!(lobster["tolerance"], 0.01);
    // a threshold step after every epoch: sparsity from the first epoch on, never falling
    let (csv, sparsity) = metrics_column(&run, "sparsity");
    assert_eq!(sparsity.len(), epochs);
    assert!(sparsity[0] > 0.0, "{csv}");
    assert!(sparsity.windows(2).all(|w| w[1] >= w[0]), "{csv}");
}

#[test]
fn patience_stops_a_run_whose_validation_loss_stops_improving() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("p");
    let o = cli_train(&run, &["--epochs", "40", "--patience", "1"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("stopped early"), "{stdout}");
    let rows = std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!((2..40).contains(&rows), "{rows} epochs");
    // a run that stopped early is finished: a resume would train one more epoch each time
    let again = cli_resume(&run, "40");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("stopped early after epoch"), "{err}");
    let after = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(after.lines().count() - 1, rows, "{after}");
}

#[test]
fn the_cosine_schedule_halves_the_learning_rate_half_way_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cosine");
    cli_train(
        &run,
        &["--epochs", "2", "--lr", "2e-3", "--lr-schedule", "cosine"],
    );
    let (csv, lr) = metrics_column(&run, "lr");
    // the rate at each epoch's first step: the full rate, then half of it
    assert_eq!(lr.len(), 2, "{csv}");
    assert!((lr[0] - 2e-3).abs() < 1e-9, "{csv}");
    assert!((lr[1] - 1e-3).abs() < 1e-9, "{csv}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["lr_schedule"], "cosine", "{config}");
}

/// A run's `metrics.csv` and the numbers of its column `name`, one per epoch.
fn metrics_column(run: &std::path::Path, name: &str) -> (String, Vec<f64>) {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name}: {csv}"));
    let values = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    (csv, values)
}
