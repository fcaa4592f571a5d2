//! The inspection worker's tests: slider moves, keeping a pruned model, held-out data.

use super::*;
use crate::data::DataSource;
use crate::train::evaluate;
use crate::train::worker::EVAL_BATCH;

#[test]
fn a_slider_move_answers_on_the_first_images_then_on_all() {
    let dev = Device::flex();
    let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 3, &dev).unwrap();
    let mut data = Dataset::load(&DataSource::Mnist).unwrap();
    data.test.truncate(100);
    let whole = evaluate(&net, &data.test, EVAL_BATCH, &dev).accuracy;
    let w = Inspector::spawn(dev, None).unwrap();
    w.send(InspectCommand::SetModel(Box::new(net))).unwrap();
    assert!(matches!(w.recv_event(), Some(InspectEvent::ModelReady(_))));
    w.send(InspectCommand::SetHeldOut(Box::new(data.test))).unwrap();
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.0,
        method: PruneMethod::Magnitude,
    })
    .unwrap();
    let Some(InspectEvent::Pruned(first)) = w.recv_event() else {
        panic!("no first answer")
    };
    assert_eq!((first.evaluated, first.held_out), (QUICK_EVAL, 100));
    let Some(InspectEvent::Pruned(all)) = w.recv_event() else {
        panic!("no refined answer")
    };
    assert_eq!((all.evaluated, all.held_out), (100, 100));
    assert!((all.accuracy.unwrap() - whole).abs() < 1e-9, "{all:?} vs {whole}");
    assert!(all.elapsed_ms >= first.elapsed_ms);
}

#[test]
fn the_slider_narrows_a_backbone_and_exports_the_narrow_network() {
    let dev = Device::flex();
    let config = crate::model::Preset::MobilenetCaps.config().with_types(2);
    let net = CapsNet::init(&config, 3, &dev).unwrap();
    let mut data = Dataset::load(&DataSource::Mnist).unwrap();
    data.test.truncate(80);
    let w = Inspector::spawn(dev.clone(), None).unwrap();
    w.send(InspectCommand::SetModel(Box::new(net))).unwrap();
    let Some(InspectEvent::ModelReady(m)) = w.recv_event() else {
        panic!("no model")
    };
    assert!(m.backbone);
    w.send(InspectCommand::SetHeldOut(Box::new(data.test))).unwrap();
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.5,
        method: PruneMethod::Backbone,
    })
    .unwrap();
    let Some(InspectEvent::Pruned(r)) = w.recv_event() else {
        panic!("no answer")
    };
    assert_eq!((r.method, r.evaluated), (PruneMethod::Backbone, QUICK_EVAL));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("narrow.safetensors");
    let export = |model_id, sparsity| InspectCommand::Export {
        path: path.clone(),
        model_id,
        pruning: (sparsity, PruneMethod::Backbone),
    };
    // an export meant for another model or position is refused, and writes nothing
    for stale in [export(m.model_id + 1, 0.5), export(m.model_id, 0.25)] {
        w.send(stale).unwrap();
        // (the slider's refined answer may come first)
        let answer = std::iter::from_fn(|| w.recv_event()).find(|e| !matches!(e, InspectEvent::Pruned(_)));
        assert!(
            matches!(&answer, Some(InspectEvent::Failed(InspectError::Export(e))) if e.contains("changed before the export")),
            "{answer:?}"
        );
    }
    assert!(!path.exists());
    w.send(export(m.model_id, 0.5)).unwrap();
    while let Some(e) = w.recv_event() {
        match e {
            InspectEvent::Exported { .. } => break,
            InspectEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    let (narrow, info) = crate::export::load_model(&path, &dev).unwrap();
    assert_eq!(info.test_accuracy, None, "a pruned model is not the loaded one");
    let kept = &narrow.config.backbone_channels;
    let f = crate::prune::backbone::flops_fraction(&narrow.config, kept);
    assert!((f - 0.5).abs() < 0.05, "{kept:?} keeps {f} of the FLOPs");
}

/// A worker using a fresh `tiny` network (seed 3), its `ModelReady` received.
fn worker_with_a_tiny_model() -> WorkerHandle<InspectCommand, InspectEvent> {
    let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 3, &Device::flex()).unwrap();
    worker_with(net)
}

/// An inspection worker on the CPU holding `net` (its ModelReady answer taken).
fn worker_with(net: CapsNet) -> WorkerHandle<InspectCommand, InspectEvent> {
    let w = Inspector::spawn(Device::flex(), None).unwrap();
    w.send(InspectCommand::SetModel(Box::new(net))).unwrap();
    assert!(matches!(w.recv_event(), Some(InspectEvent::ModelReady(_))));
    w
}

/// An inspection worker holding the tiny preset (seed 2) and 64 held-out MNIST digits, the
/// first of them inspected (so remembered); returns the worker and that digit. Inspecting
/// before the model is set fails.
fn inspector_with_a_digit() -> (WorkerHandle<InspectCommand, InspectEvent>, Vec<f32>) {
    let dev = Device::flex();
    let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 2, &dev).unwrap();
    let mut data = Dataset::load(&DataSource::Mnist).unwrap();
    data.test.truncate(64);
    let digit = data.test.image_f32(0);
    let w = Inspector::spawn(dev, None).unwrap();
    assert!(w.send(InspectCommand::Inspect(digit.clone())).is_ok());
    assert!(
        matches!(w.recv_event(), Some(InspectEvent::Failed(_))),
        "no model yet"
    );
    w.send(InspectCommand::SetModel(Box::new(net))).unwrap();
    assert!(matches!(w.recv_event(), Some(InspectEvent::ModelReady(_))));
    w.send(InspectCommand::SetHeldOut(Box::new(data.test))).unwrap();
    w.send(InspectCommand::Inspect(digit.clone())).unwrap();
    let Some(InspectEvent::Inspected(r)) = w.recv_event() else {
        panic!("no inspection")
    };
    assert_eq!(r.lengths.len(), 10);
    (w, digit)
}

#[test]
fn inspects_prunes_and_perturbs_in_the_background() {
    let (w, digit) = inspector_with_a_digit();
    // several slider moves at once: only the last is answered
    for s in [0.1, 0.5, 0.9] {
        w.send(InspectCommand::SetSparsity {
            sparsity: s,
            method: PruneMethod::Magnitude,
        })
        .unwrap();
    }
    let mut last = None;
    while let Some(e) = w.recv_event() {
        if let InspectEvent::Pruned(p) = e {
            let done = (p.sparsity - 0.9).abs() < 1e-4;
            last = Some(p);
            if done {
                break;
            }
        }
    }
    let p = last.unwrap();
    assert!((p.sparsity - 0.9).abs() < 1e-4);
    assert!(p.accuracy.is_some());
    assert_eq!(p.alive.len(), 288);
    let Some(InspectEvent::Inspected(again)) = w.recv_event() else {
        panic!("the remembered digit is inspected again after pruning")
    };
    assert_eq!(again.input, digit);
    w.send(InspectCommand::Perturb(vec![0.25; 16])).unwrap();
    let Some(InspectEvent::Reconstruction(img)) = w.recv_event() else {
        panic!("no reconstruction")
    };
    assert_eq!(img.len(), 784);
}

#[test]
fn structured_pruning_is_kept_fine_tuned_and_reset_in_the_background() {
    let (w, _) = inspector_with_a_digit();
    // structured: half of the capsules (4 of 8 whole types), kept and fine-tuned
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.5,
        method: PruneMethod::Capsules,
    })
    .unwrap();
    let Some(InspectEvent::Pruned(p)) = w.recv_event() else {
        panic!("no capsule pruning")
    };
    assert_eq!((p.alive_capsules, p.alive_types), (144, 4));
    assert!(matches!(w.recv_event(), Some(InspectEvent::Inspected(_))));
    // forgotten: no more inspections after pruning
    w.send(InspectCommand::Forget).unwrap();
    assert!(matches!(w.recv_event(), Some(InspectEvent::Forgotten)));
    // a Keep of another position or model than the worker's is refused (a model came in
    // between); the first model the worker was given is its model 1
    let keep = |sparsity, model_id| {
        InspectCommand::Keep(KeepRequest {
            data: DataSource::Mnist,
            images: 64,
            epochs: 1,
            pruning: (sparsity, PruneMethod::Capsules),
            model_id,
        })
    };
    for stale in [keep(0.75, 1), keep(0.5, 2)] {
        w.send(stale).unwrap();
        assert!(
            matches!(w.recv_event(), Some(InspectEvent::KeepFailed(InspectError::Prune(m))) if m.contains("changed before it started"))
        );
    }
    w.send(keep(0.5, 1)).unwrap();
    let mut progress = 0;
    let kept = loop {
        match w.recv_event() {
            Some(InspectEvent::Tuning { done, total }) => {
                assert_eq!(total, 2, "64 images in batches of 32");
                progress = done;
            }
            Some(InspectEvent::Kept(m)) => break m,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(progress, 2);
    assert_eq!(kept.model_id, 2, "a kept model is a new model");
    assert_eq!(kept.alive.iter().filter(|a| **a).count(), 144);
    let Some(InspectEvent::Pruned(after)) = w.recv_event() else {
        panic!("no evaluation after keep")
    };
    assert_eq!((after.alive_capsules, after.alive_types), (144, 4));
    assert!(
        (after.sparsity - p.sparsity).abs() < 1e-6,
        "the kept mask is unchanged"
    );
    // the kept model's zeros stay when the slider goes back to 0
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.0,
        method: PruneMethod::Magnitude,
    })
    .unwrap();
    let Some(InspectEvent::Pruned(zero)) = w.recv_event() else {
        panic!("no slider answer")
    };
    assert_eq!(zero.alive_capsules, 144);
    w.send(InspectCommand::Reset).unwrap();
    let Some(InspectEvent::ModelReady(m)) = w.recv_event() else {
        panic!("no reset")
    };
    assert_eq!(m.alive.iter().filter(|a| **a).count(), 288);
}

#[test]
fn an_image_file_is_decoded_by_the_worker_then_inspected() {
    let w = worker_with_a_tiny_model();
    let dir = tempfile::tempdir().unwrap();
    // a dark stroke on white paper, larger than the model's input
    let path = dir.path().join("digit.png");
    let mut img = image::GrayImage::from_pixel(56, 56, image::Luma([255u8]));
    for y in 10..46 {
        for x in 26..30 {
            img.put_pixel(x, y, image::Luma([0]));
        }
    }
    img.save(&path).unwrap();
    let load = |path: std::path::PathBuf| InspectCommand::LoadImage {
        path,
        input: (1, 28, 28),
        digits: true,
    };
    w.send(load(path)).unwrap();
    let Some(InspectEvent::ImageLoaded(px)) = w.recv_event() else {
        panic!("no image")
    };
    assert_eq!(px.len(), 28 * 28);
    // inverted: the stroke is bright on a dark background, as MNIST's digits are
    assert!(
        px.iter().cloned().fold(0.0, f32::max) > 0.5 && px[0] < 0.1,
        "{:?}",
        &px[..4]
    );
    assert!(matches!(w.recv_event(), Some(InspectEvent::Inspected(_))));
    w.send(load(dir.path().join("missing.png"))).unwrap();
    let Some(InspectEvent::Failed(e)) = w.recv_event() else {
        panic!("no error")
    };
    assert!(
        e.about_the_image() && e.to_string().contains("missing.png"),
        "{e}"
    );
}

#[test]
fn mnist_digits_are_read_by_the_worker_and_picked_for_a_digit_model() {
    let w = worker_with_a_tiny_model();
    w.send(InspectCommand::LoadMnistDigits).unwrap();
    w.send(InspectCommand::PickTestImage(3)).unwrap();
    let Some(InspectEvent::Picked { pixels, label }) = w.recv_event() else {
        panic!("no pick")
    };
    let (digits, _) = mnist_held_out().unwrap();
    assert_eq!(pixels, digits.image_f32(3));
    assert_eq!(label, digits.labels[3] as usize);
    assert!(matches!(w.recv_event(), Some(InspectEvent::Inspected(_))));
    // the slider measures on the 256 held-out digits
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.0,
        method: PruneMethod::Magnitude,
    })
    .unwrap();
    let Some(InspectEvent::Pruned(r)) = w.recv_event() else {
        panic!("no answer")
    };
    assert_eq!(r.held_out, HELD_OUT);
}

#[test]
fn only_newer_commands_of_a_kind_before_the_next_barrier_skip_one() {
    let sparsity = |s| InspectCommand::SetSparsity {
        sparsity: s,
        method: PruneMethod::Capsules,
    };
    let batch = [
        sparsity(0.1),
        sparsity(0.2),
        InspectCommand::Export {
            path: "a.safetensors".into(),
            model_id: 1,
            pruning: (0.2, PruneMethod::Capsules),
        },
        sparsity(0.3),
        InspectCommand::Load("b.safetensors".into()),
        InspectCommand::PickTestImage(1),
        InspectCommand::Forget,
        InspectCommand::Load("c.safetensors".into()),
    ];
    // 0.1 is replaced by 0.2 before the export; the export sees 0.2, not 0.3; the first
    // model and the test image are replaced by a later model and "Clear"
    assert_eq!(
        superseded(&batch),
        [true, false, false, false, true, true, false, false]
    );
}

#[test]
fn a_compact_model_is_pruned_by_capsules_as_its_dense_network() {
    let dev = Device::flex();
    let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 2, &dev).unwrap();
    let capsules = net.capsules();
    let norms = crate::prune::capsules::w_norms(&net);
    let half = crate::prune::capsules::prune_capsules(net, &norms, 0.5);
    let half = crate::prune::compact(&half).unwrap();
    assert!(half.compact.is_some());
    let mut data = Dataset::load(&DataSource::Mnist).unwrap();
    data.test.truncate(64);
    let w = worker_with(half);
    w.send(InspectCommand::SetHeldOut(Box::new(data.test))).unwrap();
    w.send(InspectCommand::SetSparsity {
        sparsity: 0.75,
        method: PruneMethod::Capsules,
    })
    .unwrap();
    let answer = w.recv_event();
    let Some(InspectEvent::Pruned(p)) = answer else {
        panic!("capsule pruning of a compact model: {answer:?}")
    };
    // three quarters of the dense network's capsules gone: the half already removed and
    // half of the rest
    assert_eq!(p.alive_capsules, capsules / 4);
}
