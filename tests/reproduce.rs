//! `scripts/reproduce.sh` in miniature (`tiny` preset, a few hundred images), so the script
//! that regenerates README's tables cannot rot.

use std::path::Path;
use std::process::Command;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn reproduce_script_runs_in_miniature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fashion = root.join("../shared/datasets/fashion-mnist");
    let datasets = if fashion.join("t10k-labels-idx1-ubyte.gz").is_file() {
        "mnist fashion-mnist"
    } else {
        eprintln!("{} not found: MNIST only", fashion.display());
        "mnist"
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let status = Command::new("bash")
        .arg(root.join("scripts/reproduce.sh"))
        .env("SPARSECAPS", env!("CARGO_BIN_EXE_sparsecaps"))
        .env("OUT", &out)
        .env("RUNS", dir.path().join("runs"))
        .env("PRESET", "tiny")
        .env("MNIST_EPOCHS", "1")
        .env("FASHION_EPOCHS", "1")
        .env("DATASETS", datasets)
        .env("FASHION", &fashion)
        .env("LIMIT_TRAIN", "300")
        .env("LIMIT_TEST", "200")
        .env("REPEAT", "1")
        .env("NO_COLOR", "1")
        .status()
        .expect("run bash");
    assert!(status.success(), "reproduce.sh failed");

    let commands = read(&out.join("commands.txt"));
    for name in datasets.split(' ') {
        // every command is logged with its wall time
        let tag = format!("/{name}-");
        let logged = commands
            .lines()
            .filter(|l| l.contains(&tag) && l.contains("# wall "))
            .count();
        // two trainings, three sweeps, and for MNIST the shipped models: prune and export
        // (75%), then prune, export, training and f16 export (95%)
        let expected = if name == "mnist" { 11 } else { 5 };
        assert_eq!(logged, expected, "{name}: {commands}");
        if name == "mnist" {
            let metrics = read(&out.join("mnist-capsules95/conv1-0/metrics.csv"));
            assert_eq!(
                metrics.lines().count(),
                6,
                "5 epochs of the compact model: {metrics}"
            );
        }
        for run in ["dense", "lobster"] {
            let metrics = read(&out.join(format!("{name}-{run}/metrics.csv")));
            assert!(metrics.lines().count() >= 2, "{name}-{run}: {metrics}");
        }
        let md = read(&out.join(format!("{name}-sweep-capsules/sweep.md")));
        let rows: Vec<&str> = md.lines().collect();
        assert_eq!(rows.len(), 8, "header, rule, baseline, five sparsities: {md}");
        assert!(
            rows[4].starts_with("| 0.5 | ") && rows[4].contains("144/288 (0.50×)"),
            "{md}"
        );
        let md = read(&out.join(format!("{name}-sweep-magnitude/sweep.md")));
        assert_eq!(md.lines().count(), 8, "{md}");
        let md = read(&out.join(format!("{name}-sweep-lobster/sweep.md")));
        assert_eq!(md.lines().count(), 4, "{md}");
        let svg = read(&out.join(format!("{name}-sweep-capsules/sweep.svg")));
        // the four series are the lines of width 2 (axes and ticks 1, legend swatches 3)
        let series = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
            .count();
        assert_eq!(series, 4, "{svg}");
        assert!(svg.contains("\nfile size / baseline\n"), "{svg}");
    }
    assert!(
        commands.contains("--preset tiny --epochs 1 --seed 42"),
        "{commands}"
    );
    // the pruned model that ships, in miniature: 75% of tiny's 288 capsules gone
    let shipped = dir.path().join("runs/mnist-capsules75-compact.safetensors");
    let dev = burn::prelude::Device::flex();
    let (model, _) = sparsecaps::export::load_model(&shipped, &dev).unwrap();
    assert_eq!(model.capsules(), 72);
}
