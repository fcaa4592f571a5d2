//! `sparsecaps inspect`.

use burn::prelude::*;

use super::args::InspectArgs;
use crate::export::load_model;
use crate::inspect::messages::draws_digits;
use crate::inspect::{inspect_digit, load_input};
use crate::prune::survival;

/// Classifies one image with a model file and lists the capsules that vote most for it.
/// The image is read as the app reads it: an MNIST model's as a drawn digit (grey, light
/// paper inverted, centred as MNIST's digits are), any other model's as it is.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let (model, info) = load_model(&args.model, &device)?;
    let input = model.config.input();
    let digits = draws_digits(input, info.dataset.as_deref());
    let pixels = load_input(&args.image, input, digits)?;
    let r = inspect_digit(&model, &pixels, args.top, &device);
    let alive = survival(&model).map;
    println!(
        "prediction {} (length {:.3}); {} of {} capsules alive",
        r.prediction,
        r.lengths[r.prediction],
        alive.alive_count(),
        alive.capsules()
    );
    for v in &r.top_capsules {
        println!(
            "  capsule {:5} (type {:2}, y {}, x {}): coupling {:.4}, activation {:.4}",
            v.capsule, v.capsule_type, v.y, v.x, v.coupling, v.activation
        );
    }
    if args.json {
        let json = serde_json::json!({
            "prediction": r.prediction,
            "lengths": r.lengths,
            "alive_capsules": alive.alive_count(),
            "capsules": alive.capsules(),
            "top_capsules": r.top_capsules,
        });
        println!("{json}");
    }
    Ok(())
}
