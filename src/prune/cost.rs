//! Compute cost of a network per image (dense arithmetic of the tensors it holds), layer by
//! layer.

use crate::model::CapsNet;

/// One layer's size and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCost {
    /// Layer name (as in the model file, e.g. `backbone.block0.a`, `conv1`, `digit`).
    pub name: String,
    /// Weight shape (the file layout).
    pub shape: Vec<usize>,
    /// Scalar parameters (weights, biases, BatchNorm scale and shift).
    pub params: usize,
    /// Millions of floating-point operations (2 per multiply-add) for one image.
    pub mflops: f64,
}

/// Every layer of `model` with its parameters and MFLOPs per image: the backbone's
/// convolutions (BatchNorm and ReLU not counted), conv1, the primary convolution, the votes,
/// routing and the decoder, with the tensor sizes the network holds (a compact or narrowed
/// network costs less; zeros inside a dense tensor still cost).
pub fn layer_costs(model: &CapsNet) -> Vec<LayerCost> {
    let c = &model.config;
    let g = model.geometry();
    let mut out = Vec::new();
    if let Some(p) = c.backbone_plan() {
        let mut specs = vec![p.stem];
        for b in &p.blocks {
            specs.extend([b.a, b.b]);
            specs.extend(b.shortcut);
        }
        for ((name, macs), spec) in p.layer_macs((c.height, c.width)).into_iter().zip(specs) {
            let shape = spec.weight_shape().to_vec();
            out.push(LayerCost {
                name: format!("backbone.{name}"),
                params: shape.iter().product::<usize>() + 2 * spec.outputs,
                shape,
                mflops: 2.0 * macs / 1e6,
            });
        }
    }
    let conv = |name: &str, shape: Vec<usize>, cells: usize| LayerCost {
        name: name.into(),
        params: shape.iter().product::<usize>() + shape[0],
        mflops: 2.0 * shape.iter().product::<usize>() as f64 * cells as f64 / 1e6,
        shape,
    };
    out.push(conv(
        "conv1",
        model.conv1_weight.dims().to_vec(),
        g.conv1_h * g.conv1_w,
    ));
    out.push(conv("primary", model.primary_weight.dims().to_vec(), g.cells()));
    let (k, d, je) = (model.capsules(), c.primary_dim, c.classes * c.class_dim);
    out.push(LayerCost {
        name: "digit".into(),
        shape: vec![k, c.classes, c.class_dim, d],
        params: k * d * je + je,
        mflops: 2.0 * (k * d * je) as f64 / 1e6,
    });
    out.push(LayerCost {
        name: "routing".into(),
        shape: vec![],
        params: 0,
        mflops: 2.0 * (k * je) as f64 * (2.0 * c.routing_iters as f64 - 1.0) / 1e6,
    });
    let mut d_in = je;
    for (i, layer) in model.decoder.iter().enumerate() {
        let d_out = layer.weight.dims()[1];
        out.push(LayerCost {
            name: format!("decoder.fc{}", i + 1),
            shape: vec![d_out, d_in],
            params: d_in * d_out + d_out,
            mflops: 2.0 * (d_in * d_out) as f64 / 1e6,
        });
        d_in = d_out;
    }
    out
}

/// Millions of floating-point operations one image costs: the sum of [`layer_costs`].
pub fn mflops_per_image(model: &CapsNet) -> f64 {
    layer_costs(model).iter().map(|l| l.mflops).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn paper_model_costs_about_0_4_gflops_and_the_primary_conv_dominates() {
        let net = CapsNet::init(&crate::model::Preset::Paper.config(), 0, &Device::flex()).unwrap();
        let total = mflops_per_image(&net);
        // primary conv: 2 * 256 * 256 * 81 * 36 = 382 MFLOPs
        let primary = 2.0 * 256.0 * 256.0 * 81.0 * 36.0 / 1e6;
        assert!(total > primary && primary / total > 0.9, "{total}");
    }

    #[test]
    fn layer_parameters_add_up_to_the_networks_and_the_backbone_is_counted() {
        for preset in [crate::model::Preset::Small, crate::model::Preset::ResnetCaps] {
            let cfg = preset.config().for_input(3, 32, 32);
            let net = CapsNet::init(&cfg, 0, &Device::flex()).unwrap();
            let layers = layer_costs(&net);
            let params: usize = layers.iter().map(|l| l.params).sum();
            assert_eq!(params, net.param_count(), "{preset}");
            let backbone: f64 = layers
                .iter()
                .filter(|l| l.name.starts_with("backbone."))
                .map(|l| l.mflops)
                .sum();
            let expected = cfg.backbone_plan().map_or(0.0, |p| 2.0 * p.macs((32, 32)) / 1e6);
            assert!(
                (backbone - expected).abs() < 1e-9,
                "{preset}: {backbone} vs {expected}"
            );
        }
    }
}
