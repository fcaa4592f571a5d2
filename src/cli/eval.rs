//! `sparsecaps eval`.

use super::args::EvalArgs;
use super::common::{Loaded, load_with_data};
use super::progress::Progress;
use crate::device;
use crate::prune::survival;
use crate::train::evaluate::evaluate_with_progress;

/// Evaluates a model file and prints accuracy, loss, sparsity and alive capsules.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let dev = device::select(args.device)?;
    let Loaded {
        model, data, source, ..
    } = load_with_data(&args.model, args.data, (None, args.limit_test), &dev.device, None)?;
    model.config.check_batch(args.batch as usize)?;
    eprintln!("device: {dev}");
    let mut progress = Progress::new(data.test.len() as u64, "eval");
    let eval = evaluate_with_progress(&model, &data.test, args.batch as usize, &dev.device, |d, _| {
        progress.update(d as u64, "")
    });
    progress.finish();
    let s = survival(&model);
    let sparsity = s.dense_sparsity(&model.config);
    println!(
        "{}: accuracy {:.4} loss {:.4} on {} {source} test images; sparsity {:.4}; alive capsules {}/{} ({} types)",
        args.model.display(),
        eval.accuracy,
        eval.loss,
        eval.images,
        sparsity,
        s.map.alive_count(),
        s.map.capsules(),
        s.map.alive_types()
    );
    if args.json {
        let json = serde_json::json!({
            "accuracy": eval.accuracy,
            "loss": eval.loss,
            "sparsity": sparsity,
            "alive_capsules": s.map.alive_count(),
            "capsules": s.map.capsules(),
            "alive_types": s.map.alive_types(),
            "images": eval.images,
            "dataset": source.to_string(),
            "device": dev.name,
        });
        println!("{json}");
    }
    Ok(())
}
