//! The app driven like a user, with egui_kittest: draw, prune, train, export and load.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sparsecaps::app::AppState;

fn harness(state: AppState) -> Harness<'static, AppState> {
    // The form fields of the training grid are named through `labelled_by` relations,
    // which kittest's accessible-name check does not follow.
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, s: &mut AppState| s.ui(ui), state)
}

/// Steps frames until `done` holds (the workers answer asynchronously), at most `secs`.
fn wait_until(
    h: &mut Harness<'static, AppState>,
    secs: u64,
    what: &str,
    done: impl Fn(&Harness<'static, AppState>) -> bool,
) {
    let start = Instant::now();
    while !done(h) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(30));
        h.step();
    }
}

fn has_label(h: &Harness<'static, AppState>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

#[test]
fn drawing_a_stroke_shows_a_prediction() {
    let mut h = harness(AppState::new(None));
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    assert!(!has_label(&h, "Prediction:"));
    let top = h.get_by_label("Draw a digit").rect().left_bottom();
    let start = top + egui::vec2(100.0, 40.0);
    h.drag_at(start);
    h.step();
    for i in 1..=12 {
        h.hover_at(start + egui::vec2(0.0, 14.0 * i as f32));
        h.step();
    }
    h.drop_at(start + egui::vec2(0.0, 170.0));
    h.step();
    assert!(
        h.state().canvas.canvas.ink.iter().any(|v| *v > 0.5),
        "the stroke left ink"
    );
    wait_until(&mut h, 30, "a prediction", |h| has_label(h, "Prediction:"));
    assert_eq!(
        h.state().inspection.inspection.as_ref().map(|r| r.lengths.len()),
        Some(10)
    );
}

#[test]
fn dragging_the_sparsity_slider_updates_sparsity_and_alive_capsules() {
    let mut h = harness(AppState::new(None));
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    h.get_by_label("Random test digit").click();
    h.step();
    wait_until(&mut h, 30, "a prediction", |h| has_label(h, "Prediction:"));
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.9);
    h.step();
    wait_until(&mut h, 30, "the pruned labels", |h| {
        has_label(h, "Sparsity: 0.900")
    });
    assert!(has_label(&h, "Held-out accuracy:"));
    let r = h.state().pruning.slider.clone().unwrap();
    assert!(r.alive_capsules <= 576);
    assert!(has_label(&h, &format!("K/N: {}/576", r.alive_capsules)));
    h.get_by_label("Reset").click();
    h.step();
    wait_until(&mut h, 30, "the reset", |h| has_label(h, "Sparsity: 0.000"));
}

#[test]
fn a_tiny_training_run_starts_moves_and_stops() {
    let mut state = AppState::new(None);
    state.training.form.limit_train = Some(20_000);
    state.training.form.device = sparsecaps::device::DeviceChoice::Cpu;
    let mut h = harness(state);
    h.run_steps(2);
    h.get_by_label("Start").click();
    h.step();
    wait_until(&mut h, 60, "progress", |h| h.state().curves.history.len() >= 2);
    assert!(has_label(&h, "epoch 1: loss"));
    h.get_by_label("Stop").click();
    h.step();
    wait_until(&mut h, 60, "the stop", |h| has_label(h, "stopped"));
    assert!(!h.state().training.running());
    assert!(h.state().training.progress.step > 0);
}

#[test]
fn export_to_a_path_and_load_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    let mut state = AppState::new(None);
    state.pruning.model_path = path.display().to_string();
    let mut h = harness(state);
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.5);
    h.step();
    wait_until(&mut h, 30, "pruning", |h| has_label(h, "Sparsity: 0.500"));
    h.get_by_label("Export compact").click();
    h.step();
    wait_until(&mut h, 60, "the export", |h| {
        has_label(h, "MB); batch-32 inference")
    });
    assert!(path.is_file());
    assert!(has_label(&h, "ms, compact "));
    h.get_by_label("Load model").click();
    h.step();
    wait_until(&mut h, 30, "the load", |h| has_label(h, "model: "));
    let m = h.state().capsule_map.model.clone().unwrap();
    assert_eq!(m.alive.len(), 576);
    // a broken file is refused and the model stays
    std::fs::write(&path, b"garbage").unwrap();
    h.get_by_label("Load model").click();
    h.step();
    wait_until(&mut h, 30, "the error", |h| h.state().pruning.error.is_some());
    assert_eq!(
        h.state().capsule_map.model.as_ref().map(|m| m.alive.len()),
        Some(576)
    );
}

#[test]
fn the_form_survives_a_restart() {
    let mut a = AppState::new(None);
    let form = &mut a.training.form;
    form.preset = sparsecaps::model::Preset::Small;
    form.epochs = 7;
    form.data = sparsecaps::data::DataSource::FashionMnist;
    form.device = sparsecaps::device::DeviceChoice::Cpu;
    form.prune = sparsecaps::train::messages::PruneKind::Lobster.default_schedule();
    a.pruning.method = sparsecaps::inspect::PruneMethod::Capsules;
    let json = serde_json::to_string(&a.saved_form()).unwrap();
    assert!(json.contains("\"data\":\"fashion-mnist\""), "{json}");
    assert!(
        json.contains("\"device\":\"cpu\""),
        "names, not Debug text: {json}"
    );
    let mut b = AppState::new(None);
    let text = |s: &AppState| serde_json::to_string(&s.saved_form()).unwrap();
    assert_ne!(text(&b), json);
    b.restore_form(serde_json::from_str(&json).unwrap());
    assert_eq!(text(&b), json);
    // a saved form with a setting out of range keeps the defaults
    let bad = json.replace("\"epochs\":7", "\"epochs\":0");
    let mut c = AppState::new(None);
    c.restore_form(serde_json::from_str(&bad).unwrap());
    assert_eq!(c.training.form.epochs, 1);
}

#[test]
fn capsule_pruning_is_kept_with_fine_tuning_and_reset() {
    let mut state = AppState::new(None);
    state.training.form.limit_train = Some(64);
    let mut h = harness(state);
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    h.get_by_label("Random test digit").click();
    h.step();
    wait_until(&mut h, 30, "a prediction", |h| has_label(h, "Prediction:"));
    assert!(has_label(&h, "576 capsules x 10 classes"), "the routing heatmap");
    h.get_by_label("capsules (structured)").click();
    h.step();
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.75);
    h.step();
    // 75% of 16 types x 36 positions: 12 whole types go
    wait_until(&mut h, 60, "structured pruning", |h| has_label(h, "K/N: 144/576"));
    assert!(has_label(&h, "Alive capsules: 144, types 4"));
    wait_until(&mut h, 30, "routing over the survivors", |h| {
        has_label(h, "144 capsules x 10 classes")
    });
    h.get_by_label("Keep").click();
    h.step();
    wait_until(&mut h, 120, "fine-tuning under the mask", |h| {
        has_label(h, "kept: fine-tuned under the mask")
    });
    wait_until(&mut h, 30, "the kept model's evaluation", |h| {
        h.state()
            .pruning
            .slider
            .as_ref()
            .is_some_and(|r| r.alive_capsules == 144)
            && has_label(h, "K/N: 144/576")
    });
    // a Cancel that arrives after a Keep ended (its answer was on the way) does not stop
    // the next Keep
    sparsecaps::ui::Commands::cancel_keep(&mut h.state_mut().workers);
    h.get_by_label("Keep").click();
    h.step();
    wait_until(&mut h, 120, "the second Keep", |h| {
        h.state().pruning.tuning.is_none()
    });
    assert!(
        has_label(&h, "kept: fine-tuned under the mask"),
        "{:?}",
        h.state().pruning.status
    );
    h.get_by_label("Reset").click();
    h.step();
    wait_until(&mut h, 30, "the dense model again", |h| {
        has_label(h, "K/N: 576/576")
    });
}

#[test]
fn a_dataset_folder_is_chosen_and_built_in_models_load() {
    let mut h = harness(AppState::new(None));
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    // what the "Folder..." dialog calls
    let dir = tempfile::tempdir().unwrap();
    h.state_mut().training.choose_dataset_folder(dir.path());
    h.step();
    assert_eq!(
        h.state().training.form.data.to_string(),
        dir.path().display().to_string()
    );
    let shown = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(h.query_by_value(&shown).is_some(), "the combo shows the folder");
    h.state_mut()
        .training
        .choose_dataset_folder(&dir.path().join("missing"));
    h.step();
    assert!(has_label(&h, "missing: not a folder"));
    for (name, _) in sparsecaps::app::BUILTIN_MODELS {
        h.state_mut().pruning.status = None;
        h.get_by_label(name).click();
        h.step();
        assert!(has_label(&h, "loading the built-in"));
        wait_until(&mut h, 30, name, |h| has_label(h, "model: "));
    }
    // the 95%-pruned compact model: 28 of its 576 capsules, one type
    #[cfg(feature = "embedded-data")]
    {
        let name = "MNIST small, 95% capsules pruned";
        h.get_by_label(name).click();
        h.step();
        wait_until(&mut h, 30, "the 95% model's map", |h| {
            has_label(h, "K/N: 28/576 capsules alive, 1/16 types")
        });
        // the CIFAR-10 model: a ResNet backbone's 1,152 capsules of 32 types, in colour
        let name = "CIFAR-10 resnet-caps, dense";
        h.get_by_label(name).click();
        h.step();
        wait_until(&mut h, 60, "the CIFAR-10 model's map", |h| {
            has_label(h, "K/N: 1152/1152 capsules alive, 32/32 types")
        });
    }
}

#[test]
fn a_failed_run_shows_its_error_and_the_next_run_works() {
    // a dataset folder whose images file claims 4096x4096 pixels
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for w in [0x803u32, 1, 4096, 4096] {
        images.extend_from_slice(&w.to_be_bytes());
    }
    let mut labels = Vec::new();
    for w in [0x801u32, 1] {
        labels.extend_from_slice(&w.to_be_bytes());
    }
    labels.push(0);
    for (name, bytes) in [
        ("train-images-idx3-ubyte", &images),
        ("train-labels-idx1-ubyte", &labels),
        ("t10k-images-idx3-ubyte", &images),
        ("t10k-labels-idx1-ubyte", &labels),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let mut state = AppState::new(None);
    state.training.form.data = sparsecaps::data::DataSource::Dir(dir.path().to_path_buf());
    state.training.form.limit_train = Some(64);
    state.training.form.device = sparsecaps::device::DeviceChoice::Cpu;
    let mut h = harness(state);
    h.run_steps(2);
    let prune_heading = h.get_by_label("Prune").rect();
    h.get_by_label("Start").click();
    h.step();
    wait_until(&mut h, 60, "the failure", |h| h.state().training.error.is_some());
    let error = h.state().training.error.clone().unwrap();
    assert!(error.contains("4096"), "{error}");
    assert!(has_label(&h, "4096"), "the error is on screen");
    h.run_steps(2);
    assert_eq!(
        h.get_by_label("Prune").rect(),
        prune_heading,
        "the error moved the panel below"
    );
    assert!(!h.state().training.running());
    // the app stays usable: a valid run starts and makes progress
    h.state_mut().training.form.data = sparsecaps::data::DataSource::Mnist;
    h.get_by_label("Start").click();
    h.step();
    wait_until(&mut h, 60, "progress", |h| h.state().training.progress.step > 0);
    assert!(h.state().training.error.is_none());
    h.get_by_label("Stop").click();
    h.step();
    wait_until(&mut h, 60, "the stop", |h| !h.state().training.running());
}

#[test]
fn keep_can_be_cancelled_and_clear_forgets_the_digit() {
    // all 60,000 training images: far more fine-tuning than the test waits for
    let mut state = AppState::new(None);
    state.training.form.limit_train = None;
    let mut h = harness(state);
    h.run_steps(2);
    assert!(has_label(&h, "No training yet"), "a hint, not bare axes");
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    h.get_by_label("Random test digit").click();
    h.step();
    wait_until(&mut h, 30, "a prediction", |h| has_label(h, "Prediction:"));
    assert!(
        has_label(&h, "16 types (mean coupling per type"),
        "routing by type"
    );
    // a click on the heatmap drills down to the capsules of the type under the pointer
    h.get_by_label("Routing heatmap").click();
    h.step();
    h.step();
    assert!(has_label(&h, "the 36 capsules of type"), "drill-down");
    h.get_by_label_contains("back to all types").click();
    h.step();
    h.step();
    assert!(
        has_label(&h, "16 types (mean coupling per type"),
        "{:?}",
        h.state().inspection.routing.view
    );
    assert!(h.state().capsule_map.activations.is_some());
    h.get_by_label("Clear").click();
    h.step();
    wait_until(&mut h, 10, "the digit forgotten", |h| {
        h.state().inspection.inspection.is_none() && h.state().capsule_map.activations.is_none()
    });
    h.get_by_label("capsules (structured)").click();
    h.step();
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.5);
    h.step();
    wait_until(&mut h, 60, "structured pruning", |h| has_label(h, "K/N: 288/576"));
    h.get_by_label("Keep").click();
    h.step();
    wait_until(&mut h, 60, "fine-tuning progress", |h| {
        has_label(h, "fine-tuning step")
    });
    let asked = Instant::now();
    h.get_by_label("Cancel").click();
    h.step();
    wait_until(&mut h, 10, "the cancellation", |h| has_label(h, "Keep cancelled"));
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    assert!(h.state().pruning.tuning.is_none());
    assert!(has_label(&h, "K/N: 288/576"), "the slider's pruning stays");
    assert!(h.query_by_label("Cancel").is_none());
    // closing the window in the middle of a Keep does not wait for it
    h.get_by_label("Keep").click();
    h.step();
    wait_until(&mut h, 60, "fine-tuning again", |h| {
        has_label(h, "fine-tuning step")
    });
    let closing = Instant::now();
    drop(h);
    assert!(
        closing.elapsed() < Duration::from_secs(2),
        "{:?}",
        closing.elapsed()
    );
}

#[test]
fn a_run_folder_is_resumed_from_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--limit-train",
            "200",
        ])
        .args(["--limit-test", "50", "--device", "cpu", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut state = AppState::new(None);
    state.training.form.epochs = 1;
    let mut h = harness(state);
    h.run_steps(2);
    // the trainer reads the checkpoint, so its answer comes in a later frame
    let resume = |h: &mut Harness<'static, AppState>, dir: &std::path::Path| {
        let s = h.state_mut();
        s.training.resume_run(dir, &mut s.workers);
        h.step();
    };
    // one epoch asked for, one done: nothing to continue
    resume(&mut h, &run);
    wait_until(&mut h, 30, "the trainer's answer", |h| {
        has_label(h, "already trained 1 of 1 epochs")
    });
    resume(&mut h, dir.path());
    wait_until(&mut h, 30, "the trainer's answer", |h| {
        has_label(h, "cannot resume")
    });
    assert!(
        !h.state().training.running(),
        "a folder that cannot be resumed ends the run"
    );
    h.state_mut().training.form.epochs = 2;
    resume(&mut h, &run);
    h.step();
    wait_until(&mut h, 120, "the resumed run", |h| has_label(h, "finished"));
    // the curves show the whole run: epoch 1 from the checkpoint, then the new epoch 2
    // (only it ran: metrics.csv has two epochs, not three)
    let epochs: Vec<usize> = h.state().curves.epochs.iter().map(|(m, _)| m.epoch).collect();
    assert_eq!(epochs, [1, 2]);
    let steps: Vec<usize> = h.state().curves.epochs.iter().map(|(_, s)| *s).collect();
    assert!(steps[0] > 0 && steps[0] < steps[1], "{steps:?}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "header and two epochs:\n{metrics}");
}

#[test]
fn a_colour_model_gets_a_test_image_picker_with_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    for (split, n) in [("train", 6), ("test", 4)] {
        for (k, class) in ["red", "green", "blue"].into_iter().enumerate() {
            let d = data.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let mut rgb = [30u8, 30, 30];
                rgb[k] = 200 + i as u8;
                image::RgbImage::from_pixel(32, 32, image::Rgb(rgb))
                    .save(d.join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    let run = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args([
            "train", "--preset", "tiny", "--epochs", "1", "--device", "cpu", "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut state = AppState::new(None);
    state.pruning.model_path = run.join("model.safetensors").display().to_string();
    let mut h = harness(state);
    h.run_steps(2);
    wait_until(&mut h, 30, "the built-in model", |h| has_label(h, "K/N: 576/576"));
    h.get_by_label("Load model").click();
    h.step();
    wait_until(&mut h, 30, "the colour model", |h| has_label(h, "Test image"));
    assert!(has_label(&h, "takes 32x32 colour images"));
    h.get_by_label("Random test image").click();
    h.step();
    wait_until(&mut h, 30, "a prediction", |h| has_label(h, "Prediction:"));
    assert_eq!(h.state().canvas.canvas.input.len(), 3 * 32 * 32);
    let label = h.state().canvas.picked_label.unwrap();
    let name = ["red", "green", "blue"][label];
    assert!(has_label(&h, &format!("Label: {name}")));
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.5);
    h.step();
    wait_until(&mut h, 30, "the slider on the model's own test images", |h| {
        h.state()
            .pruning
            .slider
            .as_ref()
            .is_some_and(|r| r.accuracy.is_some())
    });
}
