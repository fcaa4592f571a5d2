//! `sparsecaps layers`: every layer of a model file or preset with its weight shape,
//! parameters and MFLOPs per image (the per-layer counter behind every MFLOPs figure).

use burn::prelude::*;

use super::args::LayersArgs;
use crate::export::load_model;
use crate::model::CapsNet;
use crate::prune::cost::{LayerCost, layer_costs};

/// The Markdown table of `layers` with a total row.
pub fn layers_table(layers: &[LayerCost]) -> String {
    let mut md = String::from("| layer | weight shape | parameters | MFLOPs/image |\n|---|---|---:|---:|\n");
    for l in layers {
        let shape = l.shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} |\n",
            l.name, shape, l.params, l.mflops
        ));
    }
    let params: usize = layers.iter().map(|l| l.params).sum();
    let mflops: f64 = layers.iter().map(|l| l.mflops).sum();
    md.push_str(&format!("| **total** | | **{params}** | **{mflops:.2}** |\n"));
    md
}

/// Prints the layer table of `--model` or of `--preset` at `--input`.
pub fn run(args: LayersArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let model = match (&args.model, args.preset) {
        (Some(path), _) => load_model(path, &device)?.0,
        (None, Some(preset)) => {
            let &[c, h, w] = args.input.as_slice() else {
                anyhow::bail!("--input takes three numbers C,H,W, e.g. 3,32,32");
            };
            CapsNet::init(&preset.config().for_input(c, h, w), 0, &device)?
        }
        (None, None) => anyhow::bail!("give --model FILE or --preset NAME"),
    };
    print!("{}", layers_table(&layer_costs(&model)));
    Ok(())
}
