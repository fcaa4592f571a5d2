//! The reference test: the model must reproduce every tensor of
//! `../shared/fixtures/capsnet-reference/` (from an independent PyTorch implementation).
//! The config is read from `reference.json`; nothing about the fixture is hard-coded.
//! Set `SPARSECAPS_FIXTURE_DIR` to check another fixture of the same format.

use std::path::PathBuf;

use burn::prelude::*;
use sparsecaps::export::TensorFile;
use sparsecaps::model::params::digit_to_file;
use sparsecaps::model::{CapsNet, CapsNetConfig, HostTensor, Preset};
use sparsecaps::prune::{compact, survival};

const ATOL: f32 = 1e-4;
const GRAD_RTOL: f32 = 1e-4;

struct Fixture {
    config: CapsNetConfig,
    json: serde_json::Value,
    file: TensorFile,
}

fn fixture() -> Fixture {
    let dir = std::env::var_os("SPARSECAPS_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/capsnet-reference")
        });
    let text = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Overlay the fixture's config on the defaults, so fields it does not name keep theirs.
    let mut cfg = serde_json::to_value(Preset::Paper.config()).unwrap();
    for (k, v) in json["config"].as_object().expect("config object") {
        assert!(
            cfg.get(k).is_some(),
            "fixture config key '{k}' is unknown to CapsNetConfig"
        );
        cfg[k] = v.clone();
    }
    let config: CapsNetConfig = serde_json::from_value(cfg).unwrap();
    let file = TensorFile::read(&dir.join("reference.safetensors")).expect("reference.safetensors");
    Fixture { config, json, file }
}

impl Fixture {
    fn get(&self, name: &str) -> &HostTensor {
        self.file
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
    }

    /// The fixture's alive-capsule map (a u8 tensor, kept as raw bytes).
    fn alive_capsules(&self) -> Vec<bool> {
        self.file.bytes["pruned.alive_capsules"]
            .iter()
            .map(|v| *v != 0)
            .collect()
    }

    /// The fixture's model. With `pruned`, a `pruned.param.X` replaces `param.X`, and a tensor
    /// that has only a `pruned.mask.X` is masked by it.
    fn model(&self, device: &Device, pruned: bool) -> CapsNet {
        let t = &self.file.tensors;
        CapsNet::from_named(
            &self.config,
            |n| {
                let dense = t.get(&format!("param.{n}")).cloned();
                if !pruned {
                    return dense;
                }
                if let Some(p) = t.get(&format!("pruned.param.{n}")) {
                    return Some(p.clone());
                }
                match (dense, t.get(&format!("pruned.mask.{n}"))) {
                    (Some(mut d), Some(mask)) => {
                        assert_eq!(d.shape, mask.shape, "mask of {n}");
                        d.values.iter_mut().zip(&mask.values).for_each(|(v, m)| *v *= m);
                        Some(d)
                    }
                    (d, None) => d,
                    (None, Some(_)) => None,
                }
            },
            device,
        )
        .expect("fixture weights fit the config")
    }

    fn inputs(&self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let images = self.get("input.images").to_tensor::<4>(device);
        let labels = self.get("input.labels");
        let l: Vec<i64> = labels.values.iter().map(|v| *v as i64).collect();
        (
            images,
            Tensor::from_data(TensorData::new(l, labels.shape.clone()), device),
        )
    }
}

fn host<const R: usize>(t: Tensor<R>) -> HostTensor {
    HostTensor::from_tensor(t)
}

fn assert_close(name: &str, got: &HostTensor, want: &HostTensor) {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    let worst = got
        .values
        .iter()
        .zip(&want.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= ATOL, "{name}: max abs error {worst} > {ATOL}");
}

fn assert_grad_close(name: &str, got: &HostTensor, want: &HostTensor) {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    let scale = want
        .values
        .iter()
        .map(|v| v.abs())
        .fold(0.0f32, f32::max)
        .max(1e-12);
    let worst = got
        .values
        .iter()
        .zip(&want.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst / scale <= GRAD_RTOL,
        "{name}: max error {worst} is {} of the largest gradient",
        worst / scale
    );
}

fn scalar(t: Tensor<1>) -> HostTensor {
    HostTensor {
        shape: vec![1],
        values: vec![t.into_scalar::<f32>()],
    }
}

#[test]
fn reference_forward_losses_and_gradients_match_the_fixture() {
    let fx = fixture();
    let device = Device::flex().autodiff();
    let model = fx.model(&device, false);
    let (images, labels) = fx.inputs(&device);
    let out = model.forward(images.clone(), true);
    let parts = model.loss(&out, images, labels);

    assert_close(
        "conv1_out",
        &host(out.conv1.clone().unwrap().detach()),
        fx.get("expected.conv1_out"),
    );
    assert_close(
        "primary_caps",
        &host(out.primary.clone().detach()),
        fx.get("expected.primary_caps"),
    );
    // votes are [B, J, N, E] here, [B, N, J, E] in the fixture
    assert_close(
        "votes",
        &host(out.votes.clone().detach().swap_dims(1, 2)),
        fx.get("expected.votes"),
    );
    let coupling: Vec<Tensor<3>> = out
        .coupling
        .iter()
        .map(|c| c.clone().detach().swap_dims(1, 2))
        .collect();
    assert_eq!(coupling.len(), fx.config.routing_iters);
    assert_close(
        "coupling",
        &host(Tensor::stack::<4>(coupling, 0)),
        fx.get("expected.coupling"),
    );
    assert_close(
        "class_caps",
        &host(out.class_caps.clone().detach()),
        fx.get("expected.class_caps"),
    );
    assert_close(
        "lengths",
        &host(out.lengths.clone().detach()),
        fx.get("expected.lengths"),
    );
    assert_close(
        "margin_loss",
        &scalar(parts.margin.clone().detach()),
        fx.get("expected.margin_loss"),
    );
    assert_close(
        "reconstruction",
        &host(parts.recon_images.clone().expect("decoder").detach()),
        fx.get("expected.reconstruction"),
    );
    assert_close(
        "reconstruction_loss",
        &scalar(parts.reconstruction.clone().detach()),
        fx.get("expected.reconstruction_loss"),
    );
    assert_close(
        "total_loss",
        &scalar(parts.total.clone().detach()),
        fx.get("expected.total_loss"),
    );

    let grads = parts.total.backward();
    let g = |p: &burn::module::Param<Tensor<4>>| host(p.val().grad(&grads).expect("gradient"));
    assert_grad_close(
        "grad conv1.weight",
        &g(&model.conv1_weight),
        fx.get("expected.grad.conv1.weight"),
    );
    assert_grad_close(
        "grad primary.weight",
        &g(&model.primary_weight),
        fx.get("expected.grad.primary.weight"),
    );
    let gd = host(model.digit_weight.val().grad(&grads).expect("digit gradient"));
    let gd = digit_to_file(gd, fx.config.classes, fx.config.class_dim);
    assert_grad_close("grad digit.weight", &gd, fx.get("expected.grad.digit.weight"));
    let gb = host(model.digit_bias.val().grad(&grads).expect("bias gradient"));
    assert_grad_close("grad digit.bias", &gb, fx.get("expected.grad.digit.bias"));
}

#[test]
fn reference_pruned_model_outputs_and_alive_capsules_match_the_fixture() {
    let fx = fixture();
    let device = Device::flex();
    let model = fx.model(&device, true);
    let (images, labels) = fx.inputs(&device);
    let out = model.forward(images.clone(), false);
    let parts = model.loss(&out, images, labels);
    assert_close(
        "pruned lengths",
        &host(out.lengths.clone()),
        fx.get("pruned.expected.lengths"),
    );
    assert_close(
        "pruned class_caps",
        &host(out.class_caps.clone()),
        fx.get("pruned.expected.class_caps"),
    );
    assert_close(
        "pruned reconstruction",
        &host(parts.recon_images.expect("decoder")),
        fx.get("pruned.expected.reconstruction"),
    );
    let s = survival(&model);
    let want = fx.alive_capsules();
    assert_eq!(s.map.alive, want, "alive map");
    let pruning = &fx.json["pruning"];
    assert_eq!(
        s.map.alive_count() as u64,
        pruning["alive_capsules"].as_u64().unwrap()
    );
    assert_eq!(s.map.capsules() as u64, pruning["capsules"].as_u64().unwrap());
}

#[test]
fn reference_compact_model_reproduces_the_pruned_outputs() {
    let fx = fixture();
    let device = Device::flex();
    let dense = fx.model(&device, true);
    let small = compact(&dense).expect("compaction");
    let want_alive = fx.json["pruning"]["alive_capsules"].as_u64().unwrap() as usize;
    assert_eq!(small.capsules(), want_alive);
    assert_eq!(small.digit_weight.dims()[0], want_alive);
    let kept: Vec<usize> = fx
        .alive_capsules()
        .iter()
        .enumerate()
        .filter(|(_, a)| **a)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(small.capsule_indices(), kept);
    assert!(
        small.primary_types() < fx.config.types,
        "the dead type's filters are removed"
    );
    let (images, labels) = fx.inputs(&device);
    let out = small.forward(images.clone(), false);
    let parts = small.loss(&out, images, labels);
    let close = |name: &str, got: &HostTensor, want: &HostTensor| {
        let worst = got
            .values
            .iter()
            .zip(&want.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert_eq!(got.shape, want.shape, "{name}");
        assert!(worst <= 1e-5, "{name}: compact differs by {worst}");
    };
    close(
        "compact lengths",
        &host(out.lengths.clone()),
        fx.get("pruned.expected.lengths"),
    );
    close(
        "compact class_caps",
        &host(out.class_caps),
        fx.get("pruned.expected.class_caps"),
    );
    close(
        "compact reconstruction",
        &host(parts.recon_images.expect("decoder")),
        fx.get("pruned.expected.reconstruction"),
    );
}
