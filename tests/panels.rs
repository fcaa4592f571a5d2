//! Each panel on its own, driven like a user with egui_kittest against a recording
//! `Commands` handle: no worker threads, events handed in by the test.

use burn::prelude::*;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sparsecaps::export::ModelInfo;
use sparsecaps::inspect::{
    DigitInspection, InspectCommand, InspectError, InspectEvent, ModelSummary, PruneMethod, SliderResult,
    inspect_digit,
};
use sparsecaps::model::{CapsNet, Preset};
use sparsecaps::train::messages::TrainError;
use sparsecaps::train::{Command, Event, StepReport};
use sparsecaps::ui::{
    AppEvent, CanvasPanel, CapsuleMapPanel, CurvesPanel, InspectionPanel, PrunePanel, RecordedCommands,
    TrainingPanel,
};

type Pair<P> = (P, RecordedCommands);

/// A harness drawing one panel (with `draw`) against a recording command handle.
fn harness<P: 'static>(
    panel: P,
    draw: fn(&mut P, &mut egui::Ui, &mut RecordedCommands),
) -> Harness<'static, Pair<P>> {
    Harness::builder()
        .with_size(egui::vec2(420.0, 760.0))
        .build_ui_state(
            move |ui, (p, c): &mut Pair<P>| {
                egui::ScrollArea::vertical().show(ui, |ui| draw(p, ui, c));
            },
            (panel, RecordedCommands::default()),
        )
}

fn has_label<S>(h: &Harness<'static, S>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn tiny_net(channels: usize, side: usize) -> CapsNet {
    let mut config = Preset::Tiny.config();
    config.in_channels = channels;
    config.height = side;
    config.width = side;
    CapsNet::init(&config, 1, &Device::flex()).unwrap()
}

fn summary(net: &CapsNet) -> Box<ModelSummary> {
    let info = ModelInfo {
        classes: (0..10).map(|c| format!("class-{c}")).collect(),
        ..ModelInfo::default()
    };
    Box::new(ModelSummary::of(net, info))
}

fn inspection(net: &CapsNet) -> Box<DigitInspection> {
    let pixels = vec![0.5; net.config.pixels()];
    Box::new(inspect_digit(net, &pixels, 5, &Device::flex()))
}

/// A progress report of step `s` of `total` in epoch 1: loss 0.25, accuracy 0.5.
fn step(s: usize, total: usize) -> AppEvent {
    AppEvent::Train(Event::Step(StepReport {
        epoch: 1,
        step_in_epoch: s,
        steps_per_epoch: total,
        global_step: s,
        total_steps: total,
        loss: 0.25,
        accuracy: 0.5,
        images_per_s: 100.0,
    }))
}

fn pruned(alive: Vec<bool>, sparsity: f64) -> InspectEvent {
    InspectEvent::Pruned(SliderResult {
        sparsity,
        method: PruneMethod::Magnitude,
        requested: sparsity,
        accuracy: Some(0.875),
        evaluated: 256,
        held_out: 256,
        alive_capsules: alive.iter().filter(|a| **a).count(),
        alive_types: 4,
        alive,
        elapsed_ms: 12.0,
    })
}

#[test]
fn training_panel_starts_the_form_and_follows_the_run() {
    let mut h = harness(TrainingPanel::default(), |p, ui, c| p.ui(ui, c));
    h.run();
    assert!(has_label(&h, "no run yet"));
    h.get_by_label("Start").click();
    h.run();
    let Some(Command::Start(req)) = h.state().1.train.first() else {
        panic!("no Start: {:?}", h.state().1.train)
    };
    assert_eq!(req.preset, Preset::Tiny);
    assert_eq!(req.limit_test, Some(2000));
    assert!(req.out_dir.is_some(), "the app's runs are checkpointed");
    assert!(h.state().0.running());
    let started = AppEvent::Train(Event::Started {
        train_images: 320,
        test_images: 64,
        total_steps: 10,
        params: 1,
        capsules: 288,
    });
    h.state_mut().0.on_event(&started);
    h.state_mut().0.on_event(&step(3, 10));
    h.run();
    assert!(has_label(&h, "step 3/10"));
    assert!(has_label(&h, "epoch 1: loss 0.2500"));
    h.get_by_label("Pause").click();
    h.run();
    assert!(matches!(h.state().1.train.last(), Some(Command::Pause)));
    let failed = AppEvent::Train(Event::Failed(TrainError::Data(
        "dataset x: no such folder".into(),
    )));
    h.state_mut().0.on_event(&failed);
    h.run();
    assert!(!h.state().0.running());
    assert!(
        has_label(&h, "dataset x: no such folder"),
        "the error is on screen"
    );
}

#[test]
fn the_eta_counts_from_the_first_step_report_of_a_resumed_run() {
    let mut panel = TrainingPanel::default();
    // a run resumed at step 900 of 1,000
    let at = |global_step: usize| {
        AppEvent::Train(Event::Step(StepReport {
            global_step,
            total_steps: 1_000,
            ..match step(1, 1_000) {
                AppEvent::Train(Event::Step(s)) => s,
                _ => unreachable!(),
            }
        }))
    };
    panel.progress.total_steps = 1_000;
    panel.on_event(&at(900));
    assert_eq!(panel.progress.eta_s(), None, "no pace yet");
    let (step0, when) = panel.progress.first_report.unwrap();
    assert_eq!(step0, 900);
    // 10 steps in 1 s: the 50 left take 5 s (counting from step 0 would say 0.06 s)
    panel.progress.first_report = Some((900, when - std::time::Duration::from_secs(1)));
    panel.on_event(&at(910));
    panel.progress.total_steps = 960;
    let eta = panel.progress.eta_s().unwrap();
    assert!((eta - 5.0).abs() < 0.5, "{eta}");
    // 4 s of pause do not count as training
    panel.on_event(&AppEvent::Train(Event::Paused));
    panel.progress.paused_at = panel
        .progress
        .paused_at
        .map(|p| p - std::time::Duration::from_secs(4));
    panel.progress.first_report = Some((900, when - std::time::Duration::from_secs(5)));
    panel.on_event(&AppEvent::Train(Event::Resumed));
    let eta = panel.progress.eta_s().unwrap();
    assert!((eta - 5.0).abs() < 0.5, "{eta}");
}

#[test]
fn a_busy_trainer_leaves_the_run_not_started_with_the_reason() {
    let mut h = harness(TrainingPanel::default(), |p, ui, c| p.ui(ui, c));
    h.state_mut().1.refuse = true;
    h.run();
    h.get_by_label("Start").click();
    h.run();
    assert!(!h.state().0.running());
    assert!(has_label(&h, "not started"));
    assert!(has_label(&h, "the trainer is busy"));
}

#[test]
fn prune_panel_sends_slider_moves_keeps_and_cancels() {
    let mut h = harness(PrunePanel::default(), |p, ui, c| p.ui(ui, c));
    h.run();
    assert!(has_label(&h, "Sparsity: 0.000"));
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Sparsity")
        .set_value_accesskit(0.9);
    h.run();
    assert!(
        matches!(
            h.state().1.inspect.last(),
            Some(InspectCommand::SetSparsity { sparsity, method: PruneMethod::Magnitude }) if (*sparsity - 0.9).abs() < 1e-9
        ),
        "{:?}",
        h.state().1.inspect
    );
    h.get_by_label("capsules (structured)").click();
    h.run();
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::SetSparsity {
            method: PruneMethod::Capsules,
            ..
        })
    ));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(pruned(vec![true; 10], 0.9)));
    h.run();
    assert!(has_label(&h, "Sparsity: 0.900"));
    assert!(has_label(&h, "Held-out accuracy: 0.875"));
    let keep_rect = h.get_by_label("Keep").rect();
    h.get_by_label("Keep").click();
    h.run();
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::Keep(_))
    ));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Tuning { done: 3, total: 10 }));
    h.run();
    assert!(has_label(&h, "fine-tuning step 3/10"));
    assert_eq!(h.get_by_label("Keep").rect(), keep_rect, "the buttons stay put");
    // no export of the model a Keep is about to replace
    h.get_by_label("Export compact").click();
    h.run();
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::Keep(_))
    ));
    h.get_by_label("Cancel").click();
    h.run();
    assert_eq!(h.state().1.cancels, 1);
    // a failed export queued before the Keep leaves its progress; the Keep's own failure
    // ends it
    let export = InspectError::Export("/x: no such folder".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(export)));
    h.run();
    assert!(has_label(&h, "fine-tuning step 3/10"));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::KeepFailed(
            InspectError::NoModel,
        )));
    h.run();
    assert!(!has_label(&h, "fine-tuning step"));
    assert!(has_label(&h, "no model loaded"));
    // model errors show here; errors about the image are the canvas's
    let image = InspectError::ImageSize { got: 3, want: 784 };
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(image)));
    h.run();
    assert!(!has_label(&h, "the model takes 784"));
    let load = InspectError::Load("x.safetensors: header too small".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(load)));
    h.run();
    assert!(has_label(&h, "header too small"));
    h.get_by_label("Export compact").click();
    h.run();
    let shown = h.state().0.model_id;
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::Export { model_id, .. }) if *model_id == shown
    ));
    assert!(has_label(&h, "exporting to"));
    // a refused export ends its "exporting..." line
    let refused = InspectError::Export("the model or the pruning changed before the export started".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(refused)));
    h.run();
    assert!(!has_label(&h, "exporting to"));
    assert!(has_label(&h, "changed before the export started"));
}

#[test]
fn an_export_after_a_failed_slider_move_names_the_unpruned_model() {
    let mut h = harness(PrunePanel::default(), |p, ui, c| p.ui(ui, c));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&tiny_net(
            1, 28,
        )))));
    h.run();
    // the slider moved, but its pruning failed: no result on screen, the worker unmoved
    h.state_mut().0.sparsity = 0.4;
    let failed = InspectError::Prune("no held-out images".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(failed)));
    h.get_by_label("Export compact").click();
    h.run();
    assert!(
        matches!(h.state().1.inspect.last(), Some(InspectCommand::Export { pruning, .. }) if pruning.0 == 0.0),
        "{:?}",
        h.state().1.inspect
    );
}

#[test]
fn prune_panel_stops_following_the_run_once_a_model_is_loaded() {
    let mut h = harness(PrunePanel::default(), |p, ui, c| p.ui(ui, c));
    // a run's first event
    let started = AppEvent::Train(Event::Device {
        name: "cpu".into(),
        reason: "asked for".into(),
    });
    let checkpoint = |epoch: usize| {
        AppEvent::Train(Event::Checkpoint {
            path: format!("run/epoch-{epoch}.safetensors").into(),
            epoch,
        })
    };
    h.state_mut().0.on_event(&started);
    h.state_mut().0.on_event(&checkpoint(1));
    h.run();
    assert!(h.state().0.follow_run, "a run's checkpoints are shown");
    assert!(h.query_by_label("Follow the run").is_none());
    // a load that fails leaves the run's model in use, still followed
    h.get_by_label("Load model").click();
    h.run();
    assert!(!h.state().0.follow_run);
    let failed = InspectError::Load("typo.safetensors: no such file".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(failed)));
    assert!(h.state().0.follow_run, "a failed load does not stop following");
    h.get_by_label("Load model").click();
    h.run();
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&tiny_net(
            1, 28,
        )))));
    h.run();
    assert!(!h.state().0.follow_run, "a loaded model is not replaced");
    h.state_mut().0.on_event(&checkpoint(2));
    h.run();
    assert!(has_label(&h, "checkpoints (epoch 2) wait"));
    h.get_by_label("Follow the run").click();
    h.run();
    assert!(h.state().0.follow_run);
    assert!(
        matches!(h.state().1.inspect.last(), Some(InspectCommand::Load(p)) if p.ends_with("epoch-2.safetensors")),
        "{:?}",
        h.state().1.inspect
    );
    // Keep stops following too, and a new run starts it again
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(pruned(vec![true; 10], 0.5)));
    h.run();
    h.get_by_label("Keep").click();
    h.run();
    assert!(!h.state().0.follow_run);
    // ... unless it is cancelled (the model in use did not change)
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::KeepCancelled));
    h.run();
    assert!(h.state().0.follow_run, "a cancelled Keep does not stop following");
    h.get_by_label("Keep").click();
    h.run();
    assert!(!h.state().0.follow_run);
    h.state_mut().0.on_event(&started);
    assert!(h.state().0.follow_run);
    // a model loaded while the new run still loads its images stays, past its Started
    h.get_by_label("Load model").click();
    h.run();
    h.state_mut().0.on_event(&AppEvent::Train(Event::Started {
        train_images: 64,
        test_images: 8,
        total_steps: 4,
        params: 100,
        capsules: 32,
    }));
    assert!(!h.state().0.follow_run);
}

#[test]
fn keep_fine_tunes_on_the_dataset_the_model_names() {
    let mut h = harness(PrunePanel::default(), |p, ui, c| p.ui(ui, c));
    let mut fashion = summary(&tiny_net(1, 28));
    fashion.info.dataset = Some("fashion-mnist".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(fashion)));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(pruned(vec![true; 10], 0.5)));
    h.run();
    h.get_by_label("Keep").click();
    h.run();
    assert!(
        matches!(
            h.state().1.inspect.last(),
            Some(InspectCommand::Keep(k)) if k.data == sparsecaps::data::DataSource::FashionMnist
                // the result on screen came after the model, from a move the panel's own
                // slider no longer shows (it went back to 0 with the model): Keep keeps it
                && k.pruning == (0.5, PruneMethod::Magnitude)
        ),
        "{:?}",
        h.state().1.inspect
    );
}

#[test]
fn canvas_panel_inspects_drawings_and_forgets_them_on_clear() {
    let mut h = harness(CanvasPanel::default(), |p, ui, c| p.ui(ui, c));
    h.run();
    let top = h.get_by_label("Draw a digit").rect().left_bottom();
    let start = top + egui::vec2(60.0, 40.0);
    h.drag_at(start);
    h.run();
    for i in 1..=6 {
        h.hover_at(start + egui::vec2(0.0, 12.0 * i as f32));
        h.run();
    }
    h.drop_at(start + egui::vec2(0.0, 90.0));
    h.run();
    let Some(InspectCommand::Inspect(pixels)) = h.state().1.inspect.last() else {
        panic!("no inspection asked: {:?}", h.state().1.inspect)
    };
    assert_eq!(pixels.len(), 784);
    assert!(pixels.iter().any(|v| *v > 0.5), "the stroke reached the input");
    h.get_by_label("Clear").click();
    h.run();
    assert!(matches!(h.state().1.inspect.last(), Some(InspectCommand::Forget)));
    assert!(h.state().0.canvas.input.iter().all(|v| *v == 0.0));
    // a test digit asked for before "Clear" and answered after it stays away
    let picked = |label| {
        AppEvent::Inspect(InspectEvent::Picked {
            pixels: vec![1.0; 784],
            label,
        })
    };
    h.state_mut().0.on_event(&picked(7));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Forgotten));
    h.run();
    assert!(h.state().0.canvas.input.iter().all(|v| *v == 0.0));
    assert_eq!(h.state().0.picked_label, None);
    // one asked for after it is shown
    h.get_by_label("Random test digit").click();
    h.run();
    h.state_mut().0.on_event(&picked(3));
    h.run();
    assert_eq!(h.state().0.picked_label, Some(3));
    let refused = InspectError::ImageSize { got: 3, want: 784 };
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(refused)));
    h.run();
    assert!(has_label(&h, "the model takes 784"));
}

#[test]
fn a_fashion_mnist_model_gets_its_own_test_images_not_the_drawing_canvas() {
    let mut h = harness(CanvasPanel::default(), |p, ui, c| p.ui(ui, c));
    h.run();
    assert!(
        has_label(&h, "Random test digit"),
        "MNIST's canvas without a model"
    );
    let mut fashion = summary(&tiny_net(1, 28));
    fashion.info.dataset = Some("fashion-mnist".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(fashion)));
    h.run();
    assert!(has_label(&h, "Random test image"));
    assert!(!has_label(&h, "Random test digit"));
}

#[test]
fn canvas_panel_picks_test_images_for_a_colour_model() {
    let net = tiny_net(3, 28);
    let mut h = harness(CanvasPanel::default(), |p, ui, c| p.ui(ui, c));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&net))));
    h.run();
    assert!(has_label(&h, "Test image"));
    assert!(has_label(&h, "takes 28x28 colour images"));
    h.get_by_label("Random test image").click();
    h.run();
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::PickTestImage(_))
    ));
    let picked = InspectEvent::Picked {
        pixels: vec![0.25; 3 * 28 * 28],
        label: 4,
    };
    h.state_mut().0.on_event(&AppEvent::Inspect(picked));
    h.run();
    assert!(has_label(&h, "Label: class-4"));
    // an image file is read by the worker, at the model's input size; the panel shows it
    // once the worker answers
    h.get_by_label("Load image").click();
    h.run();
    assert!(
        has_label(&h, "type the path of an image file"),
        "an empty path asks for one"
    );
    h.state_mut().0.image_path = "/photos/cat.jpg".into();
    h.get_by_label("Load image").click();
    h.run();
    let Some(InspectCommand::LoadImage { path, input, digits }) = h.state().1.inspect.last() else {
        panic!("no image asked for: {:?}", h.state().1.inspect)
    };
    assert_eq!(
        (path.to_str(), *input, *digits),
        (Some("/photos/cat.jpg"), (3, 28, 28), false)
    );
    let loaded = InspectEvent::ImageLoaded(vec![0.75; 3 * 28 * 28]);
    h.state_mut().0.on_event(&AppEvent::Inspect(loaded));
    h.run();
    assert!(h.state().0.canvas.input.iter().all(|v| *v == 0.75));
    assert!(!has_label(&h, "Label: class-4"), "a file has no label");
    let unreadable = InspectError::Image("/photos/cat.jpg: cannot read image: no such file".into());
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Failed(unreadable)));
    h.run();
    assert!(has_label(&h, "cannot read image"));
}

#[test]
fn inspection_panel_shows_an_inspection_perturbs_and_forgets() {
    let net = tiny_net(1, 28);
    let mut h = harness(InspectionPanel::default(), |p, ui, c| p.ui(ui, c));
    h.run();
    assert!(has_label(&h, "Draw a digit or pick"));
    let r = inspection(&net);
    let predicted = format!("Prediction: class-{}", r.prediction);
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&net))));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Inspected(r)));
    h.run();
    assert!(has_label(&h, &predicted), "class names from the model");
    assert!(has_label(&h, "288 capsules x 10 classes"), "the routing view");
    h.get_by_label("Winning capsule's 16 dimensions").click();
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "dim 0")
        .set_value_accesskit(0.2);
    h.run();
    assert!(
        matches!(h.state().1.inspect.last(), Some(InspectCommand::Perturb(d)) if (d[0] - 0.2).abs() < 1e-6)
    );
    // a new image starts without offsets; a model with 8-D class capsules gets 8 sliders
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Inspected(inspection(&net))));
    assert!(h.state().0.perturb.iter().all(|d| *d == 0.0));
    let mut narrow = summary(&net);
    narrow.class_dim = 8;
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(narrow)));
    h.run();
    assert!(has_label(&h, "Winning capsule's 8 dimensions"));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Forgotten));
    h.run();
    assert!(has_label(&h, "Draw a digit or pick"));
}

#[test]
fn capsule_map_counts_alive_capsules_and_drops_activations_of_a_forgotten_image() {
    let net = tiny_net(1, 28);
    let mut h = harness(CapsuleMapPanel::default(), |p, ui, _| p.ui(ui));
    h.run();
    assert!(has_label(&h, "No model loaded."));
    let events = [
        InspectEvent::ModelReady(summary(&net)),
        InspectEvent::Inspected(inspection(&net)),
    ];
    for e in events {
        h.state_mut().0.on_event(&AppEvent::Inspect(e));
    }
    h.run();
    assert!(has_label(&h, "K/N: 288/288 capsules alive, 8/8 types"));
    assert!(h.state().0.activations.is_some());
    let half: Vec<bool> = (0..288).map(|i| i < 144).collect();
    h.state_mut().0.on_event(&AppEvent::Inspect(pruned(half, 0.5)));
    h.run();
    assert!(has_label(&h, "K/N: 144/288 capsules alive, 4/8 types"));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::Forgotten));
    assert!(h.state().0.activations.is_none());
}

#[test]
fn curves_show_a_hint_until_a_run_reports_and_keep_slider_results() {
    let mut h = harness(CurvesPanel::default(), |p, ui, _| p.ui(ui));
    h.run();
    assert!(has_label(&h, "No training yet"));
    assert!(has_label(&h, "after the first epoch"));
    h.state_mut().0.on_event(&step(1, 2));
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(pruned(vec![true; 4], 0.3)));
    h.run();
    assert!(!has_label(&h, "No training yet"));
    assert_eq!(h.state().0.slider_history, vec![(0.3, 0.875)]);
    assert_eq!(h.state().0.history.len(), 1);
    // the same sparsity again replaces its point; another method or model starts over
    let again = |h: &mut Harness<'static, Pair<CurvesPanel>>, r: InspectEvent| {
        h.state_mut().0.on_event(&AppEvent::Inspect(r));
    };
    again(&mut h, pruned(vec![true; 4], 0.3));
    again(&mut h, pruned(vec![true; 4], 0.6));
    assert_eq!(h.state().0.slider_history.len(), 2);
    let mut capsules = pruned(vec![true; 4], 0.5);
    if let InspectEvent::Pruned(r) = &mut capsules {
        r.method = PruneMethod::Capsules;
    }
    again(&mut h, capsules);
    assert_eq!(h.state().0.slider_history, vec![(0.5, 0.875)]);
    let net = tiny_net(1, 28);
    again(&mut h, InspectEvent::ModelReady(summary(&net)));
    assert!(h.state().0.slider_history.is_empty(), "points of another model");
}

#[test]
fn prune_panel_offers_backbone_pruning_only_for_a_backbone_model() {
    let mut h = harness(PrunePanel::default(), |p, ui, c| p.ui(ui, c));
    let plain = tiny_net(1, 28);
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&plain))));
    h.run();
    assert!(!has_label(&h, "backbone channels (FLOPs)"));
    let config = Preset::ResnetCaps.config().for_input(3, 16, 16).with_types(2);
    let net = CapsNet::init(&config, 1, &Device::flex()).unwrap();
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&net))));
    h.run();
    h.get_by_label("backbone channels (FLOPs)").click();
    h.run();
    assert!(has_label(&h, "Fraction of the backbone's FLOPs removed"));
    assert!(matches!(
        h.state().1.inspect.last(),
        Some(InspectCommand::SetSparsity {
            method: PruneMethod::Backbone,
            ..
        })
    ));
    // a model without a backbone takes the option away again
    h.state_mut()
        .0
        .on_event(&AppEvent::Inspect(InspectEvent::ModelReady(summary(&plain))));
    h.run();
    assert!(!has_label(&h, "backbone channels (FLOPs)"));
    assert_eq!(h.state().0.method, PruneMethod::Magnitude);
}
