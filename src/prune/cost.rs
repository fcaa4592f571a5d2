//! Compute cost of a network per image (dense arithmetic of the tensors it holds).

use crate::model::CapsNet;

/// Millions of floating-point operations (2 per multiply-add) one image costs: the
/// backbone's convolutions (BatchNorm and ReLU not counted), conv1,
/// primary convolution, votes, routing and decoder, with the tensor sizes the network
/// holds (a compact network costs less; zeros inside a dense tensor still cost).
pub fn mflops_per_image(model: &CapsNet) -> f64 {
    let c = &model.config;
    let g = model.geometry();
    let c1 = model.conv1_weight.dims()[0] as f64;
    let out = model.primary_weight.dims()[0] as f64;
    let k1 = (c.conv1_kernel * c.conv1_kernel) as f64;
    let k2 = (c.primary_kernel * c.primary_kernel) as f64;
    let c0 = model.conv1_weight.dims()[1] as f64;
    let conv1 = 2.0 * c1 * c0 * k1 * (g.conv1_h * g.conv1_w) as f64;
    let backbone = c
        .backbone_plan()
        .map_or(0.0, |p| 2.0 * p.macs((c.height, c.width)));
    let primary = 2.0 * out * c1 * k2 * g.cells() as f64;
    let k = model.capsules() as f64;
    let je = (c.classes * c.class_dim) as f64;
    let votes = 2.0 * k * c.primary_dim as f64 * je;
    let r = c.routing_iters as f64;
    let routing = 2.0 * k * je * (2.0 * r - 1.0);
    let mut decoder = 0.0;
    let mut d_in = je;
    for layer in &model.decoder {
        let d_out = layer.weight.dims()[1] as f64;
        decoder += 2.0 * d_in * d_out;
        d_in = d_out;
    }
    (backbone + conv1 + primary + votes + routing + decoder) / 1e6
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
}
