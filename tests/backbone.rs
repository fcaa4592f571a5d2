//! Backbone CapsNets through the CLI: `resnet-caps` trains on 500 CIFAR-10 images, EagleEye
//! prunes its backbone to half its FLOPs, the narrowed model evaluates; backbone pruning of
//! a model without a backbone, or `--flops` without it, is a one-line error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::prelude::*;
use sparsecaps::export::load_model;
use sparsecaps::model::BackboneKind;
use sparsecaps::prune::backbone::flops_fraction;

fn sparsecaps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsecaps"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("SPARSECAPS_CIFAR10", cifar_dir())
        .output()
        .expect("run sparsecaps")
}

fn cifar_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/cifar-10")
}

/// Whether the shared CIFAR-10 copy is there (CI has it; say so when it is not).
fn have_cifar() -> bool {
    let there = cifar_dir().is_dir();
    if !there {
        eprintln!("skipped: {} is not there", cifar_dir().display());
    }
    there
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("device:")).collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
}

#[test]
fn resnet_caps_trains_on_cifar10_and_eagleeye_halves_its_backbone_flops() {
    if !have_cifar() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    ok(&sparsecaps(&[
        "train",
        "--preset",
        "resnet-caps",
        "--data",
        "cifar10",
        "--limit-train",
        "500",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        run_s,
    ]));
    let dense_path = run.join("model.safetensors");
    let dev = Device::flex();
    let (dense, _) = load_model(&dense_path, &dev).unwrap();
    assert_eq!(dense.config.backbone, BackboneKind::Resnet);
    assert_eq!((dense.config.in_channels, dense.capsules()), (3, 1152));
    // BatchNorm ran in training mode: its running mean moved away from its initial zeros
    let named: std::collections::HashMap<_, _> = dense.to_named().into_iter().collect();
    assert!(named["backbone.stem.bn.mean"].values.iter().any(|v| *v != 0.0));

    // the per-layer table adds up to the model's parameters
    let table = ok(&sparsecaps(&["layers", "--model", dense_path.to_str().unwrap()]));
    assert!(
        table.contains("| backbone.block6.shortcut | 64x32x1x1 |"),
        "{table}"
    );
    assert!(table.contains(&format!("**{}**", dense.param_count())), "{table}");

    let pruned_path = dir.path().join("half.safetensors");
    // EagleEye to `flops` of the backbone's FLOPs, 2 candidates, one epoch of fine-tuning
    let prune = |flops: &str, out: &Path| {
        sparsecaps(&[
            "prune",
            "--model",
            dense_path.to_str().unwrap(),
            "--method",
            "backbone",
            "--flops",
            flops,
            "--candidates",
            "2",
            "--limit-train",
            "200",
            "--limit-test",
            "50",
            "--finetune-epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = ok(&prune("0.5", &pruned_path));
    assert!(out.contains("MFLOPs per image"), "{out}");
    let (pruned, _) = load_model(&pruned_path, &dev).unwrap();
    let kept = &pruned.config.backbone_channels;
    assert_eq!(kept.len(), 9, "one group per basic block");
    let f = flops_fraction(&pruned.config, kept);
    assert!((f - 0.5).abs() <= 0.02, "kept {f} of the backbone's FLOPs");
    assert!(pruned.param_count() < dense.param_count());
    // a target below one channel per group is refused before any search
    let floor = prune("0.000001", &dir.path().join("floor.safetensors"));
    assert_one_line_error(&floor, "below the least it can keep");
    let sweep_dir = dir.path().join("sweep");
    let sweep = sparsecaps(&[
        "sweep",
        "--model",
        dense_path.to_str().unwrap(),
        "--method",
        "backbone",
        "--sparsities",
        "0,0.9999",
        "--device",
        "cpu",
        "--out",
        sweep_dir.to_str().unwrap(),
    ]);
    assert_one_line_error(
        &sweep,
        "--sparsities 0.9999: keeping 0.01% of the backbone's FLOPs",
    );
    assert!(!sweep_dir.exists(), "refused before its folder was made");
    let eval = ok(&sparsecaps(&[
        "eval",
        "--model",
        pruned_path.to_str().unwrap(),
        "--limit-test",
        "50",
        "--device",
        "cpu",
        "--json",
    ]));
    assert!(eval.contains("\"accuracy\""), "{eval}");
}

#[test]
fn backbone_pruning_needs_a_backbone_and_flops_needs_the_backbone_method() {
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/mnist-small.safetensors");
    let small = small.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    assert_one_line_error(
        &sparsecaps(&[
            "prune", "--model", small, "--method", "backbone", "--flops", "0.5", "--conv1", "0.5", "--out",
            out,
        ]),
        "does not combine with --method backbone",
    );
    assert_one_line_error(
        &sparsecaps(&["layers", "--preset", "resnet-caps", "--input", "3,32"]),
        "--input takes three numbers",
    );
    assert_one_line_error(
        &sparsecaps(&["prune", "--model", small, "--flops", "0.5", "--out", out]),
        "--flops is for --method backbone",
    );
    assert_one_line_error(
        &sparsecaps(&[
            "prune",
            "--model",
            small,
            "--method",
            "backbone",
            "--flops",
            "0.5",
            "--limit-train",
            "10",
            "--limit-test",
            "10",
            "--device",
            "cpu",
            "--out",
            out,
        ]),
        "has no backbone",
    );
}

#[test]
fn a_resumed_backbone_run_equals_a_straight_one_batchnorm_statistics_included() {
    if !have_cifar() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, epochs: &str| {
        let out = dir.path().join(name);
        ok(&sparsecaps(&[
            "train",
            "--preset",
            "mobilenet-caps",
            "--data",
            "cifar10",
            "--limit-train",
            "128",
            "--limit-test",
            "32",
            "--batch",
            "32",
            "--epochs",
            epochs,
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]));
        out
    };
    let straight = train("straight", "2");
    let resumed = train("resumed", "1");
    ok(&sparsecaps(&[
        "train",
        "--resume",
        resumed.to_str().unwrap(),
        "--epochs",
        "2",
    ]));
    let weights = |run: &Path| {
        let (m, _) = load_model(&run.join("model.safetensors"), &Device::flex()).unwrap();
        let mut named = m.to_named();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let (a, b) = (weights(&straight), weights(&resumed));
    assert!(a.iter().any(|(n, _)| n == "backbone.block4.b.bn.var"));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "{name} differs");
    }
}
