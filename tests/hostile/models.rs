//! Model files whose config, tensors or records lie, and valid models paired with data
//! they cannot take.

use std::path::Path;

use serde_json::Value;
use sparsecaps::model::Preset;

use super::eval;
use super::files::{ModelParts, Raw, f32_bytes, png_digit};
use super::runner::{Case, Expect};

use Expect::{Refuse, Succeed};

/// Model files whose config, tensors or records lie.
pub fn model_cases(dir: &Path) -> Vec<Case> {
    let set = |k: &'static str, v: Value| {
        move |c: &mut serde_json::Map<String, Value>| {
            c.insert(k.into(), v);
        }
    };
    let configs: Vec<(&str, ModelParts)> = vec![
        ("one class", ModelParts::tiny().config(set("classes", 1.into()))),
        (
            "routing iterations 1e9",
            ModelParts::tiny().config(set("routing_iters", 1_000_000_000u64.into())),
        ),
        (
            "routing iterations u64::MAX",
            ModelParts::tiny().config(set("routing_iters", u64::MAX.into())),
        ),
        (
            "input 100000x100000",
            ModelParts::tiny().config(|c| {
                c.insert("height".into(), 100_000.into());
                c.insert("width".into(), 100_000.into());
            }),
        ),
        (
            "input sides whose product wraps",
            ModelParts::tiny().config(|c| {
                c.insert("height".into(), (1u64 << 33).into());
                c.insert("width".into(), (1u64 << 31).into());
            }),
        ),
        (
            "capsule types whose products wrap",
            ModelParts::tiny().config(set("types", (u64::MAX / 8).into())),
        ),
        (
            "conv1 channels 2^40",
            ModelParts::tiny().config(set("conv1_channels", (1u64 << 40).into())),
        ),
        (
            "kernel larger than the input",
            ModelParts::tiny().config(set("conv1_kernel", 64.into())),
        ),
        (
            "stride 0",
            ModelParts::tiny().config(set("primary_stride", 0.into())),
        ),
        (
            "decoder layer of 0 units",
            ModelParts::tiny().config(set("decoder_hidden", Value::from(vec![0, 64]))),
        ),
        (
            "negative margin",
            ModelParts::tiny().config(set("m_plus", Value::from(-3.0))),
        ),
        (
            "five input channels",
            ModelParts::tiny().config(set("in_channels", 5.into())),
        ),
        (
            "capsule dimension 0",
            ModelParts::tiny().config(set("primary_dim", 0.into())),
        ),
        (
            "class capsules of 2^20 dimensions",
            ModelParts::tiny().config(set("class_dim", (1u64 << 20).into())),
        ),
        (
            "nine decoder layers",
            ModelParts::tiny().config(set("decoder_hidden", Value::from(vec![8; 9]))),
        ),
        (
            "reconstruction weight 1e300",
            ModelParts::tiny().config(set("reconstruction_weight", Value::from(1e300))),
        ),
        (
            "a size given as text",
            ModelParts::tiny().config(set("types", Value::from("eight"))),
        ),
        (
            "a size given as -1",
            ModelParts::tiny().config(set("types", Value::from(-1))),
        ),
        ("sparse list not JSON", ModelParts::tiny().meta("sparse", "[[[")),
        (
            "sparse mask with bits past the end",
            ModelParts::tiny()
                .meta("sparse", r#"{"digit.bias":[10,15]}"#)
                .push(Raw {
                    name: "digit.bias.mask".into(),
                    dtype: "U8",
                    shape: vec![19],
                    data: vec![255; 19],
                })
                .push(Raw {
                    name: "digit.bias.values".into(),
                    dtype: "F32",
                    shape: vec![152],
                    data: f32_bytes(&[0.5; 152]),
                }),
        ),
        (
            "half-precision NaN weight",
            ModelParts::tiny().tensor("digit.bias", |t| {
                let n = t.data.len() / 4;
                let mut v = vec![0u8; 2 * n];
                v[..2].copy_from_slice(&0x7e00u16.to_le_bytes());
                t.dtype = "F16";
                t.data = v;
            }),
        ),
        (
            "config not JSON",
            ModelParts::tiny().meta("config", "{\"classes\": "),
        ),
        ("config missing", {
            let mut p = ModelParts::tiny();
            p.metadata.remove("config");
            p
        }),
        (
            "format version 99",
            ModelParts::tiny().meta("format_version", "99"),
        ),
        (
            "not a sparsecaps model",
            ModelParts::tiny().meta("format", "something-else"),
        ),
        (
            "compact record that keeps nothing",
            ModelParts::tiny().meta(
                "compact",
                r#"{"conv1_channels":[],"live_types":[],"capsules":[],"select":null}"#,
            ),
        ),
        (
            "compact record out of range",
            ModelParts::tiny().meta(
                "compact",
                r#"{"conv1_channels":[0,99999],"live_types":[0],"capsules":[0],"select":null}"#,
            ),
        ),
        (
            "NaN weight",
            ModelParts::tiny().tensor("conv1.weight", |t| {
                t.data[..4].copy_from_slice(&f32::NAN.to_le_bytes())
            }),
        ),
        (
            "infinite weight",
            ModelParts::tiny().tensor("digit.weight", |t| {
                t.data[8..12].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes())
            }),
        ),
        (
            "f64 weight too large for f32",
            ModelParts::tiny().tensor("primary.bias", |t| {
                let n = t.data.len() / 4;
                let mut v: Vec<u8> = (0..n).flat_map(|_| 0.01f64.to_le_bytes()).collect();
                v[..8].copy_from_slice(&1e300f64.to_le_bytes());
                t.dtype = "F64";
                t.data = v;
            }),
        ),
        (
            "weight of the wrong shape",
            ModelParts::tiny().tensor("digit.bias", |t| {
                t.shape = vec![3, 1];
                t.data.truncate(12);
            }),
        ),
        (
            "weight stored as booleans",
            ModelParts::tiny().tensor("conv1.bias", |t| {
                t.dtype = "BOOL";
                t.data.truncate(t.data.len() / 4);
            }),
        ),
        ("weight missing", {
            let mut p = ModelParts::tiny();
            p.tensors.retain(|t| t.name != "primary.weight");
            p
        }),
        (
            "sparse shape that overflows",
            ModelParts::tiny()
                .meta("sparse", r#"{"digit.weight":[18446744073709551615,3]}"#)
                .push(Raw {
                    name: "digit.weight.mask".into(),
                    dtype: "U8",
                    shape: vec![1],
                    data: vec![1],
                })
                .push(Raw {
                    name: "digit.weight.values".into(),
                    dtype: "F32",
                    shape: vec![1],
                    data: f32_bytes(&[1.0]),
                }),
        ),
        (
            "sparse mask far larger than the shape",
            ModelParts::tiny()
                .meta("sparse", r#"{"digit.bias":[10,16]}"#)
                .push(Raw {
                    name: "digit.bias.mask".into(),
                    dtype: "U8",
                    shape: vec![8 << 20],
                    data: vec![0; 8 << 20],
                })
                .push(Raw {
                    name: "digit.bias.values".into(),
                    dtype: "F32",
                    shape: vec![0],
                    data: vec![],
                }),
        ),
        (
            "sparse values missing",
            ModelParts::tiny()
                .meta("sparse", r#"{"digit.bias":[10,16]}"#)
                .push(Raw {
                    name: "digit.bias.mask".into(),
                    dtype: "U8",
                    shape: vec![20],
                    data: vec![255; 20],
                }),
        ),
        (
            "large u8 tensor",
            ModelParts::tiny().push(Raw {
                name: "junk".into(),
                dtype: "U8",
                shape: vec![1 << 26],
                data: vec![7; 1 << 26],
            }),
        ),
    ];
    let mut cases = Vec::new();
    for (i, (name, parts)) in configs.into_iter().enumerate() {
        let path = dir.join(format!("m{i}.safetensors"));
        parts.write(&path);
        let expect = Refuse;
        cases.push(eval("model file", name, expect, &path));
        if i % 3 == 0 {
            let out = dir.join(format!("out{i}.safetensors"));
            cases.push(Case::new(
                "model file",
                &format!("{name} (export)"),
                expect,
                &[&"export", &"--model", &path, &"--out", &out],
            ));
        }
        if i % 3 == 1 {
            cases.push(Case::new(
                "model file",
                &format!("{name} (bench)"),
                expect,
                &[
                    &"bench",
                    &"--model",
                    &path,
                    &"--batch",
                    &"2",
                    &"--repeat",
                    &"1",
                    &"--device",
                    &"cpu",
                ],
            ));
        }
    }
    // raw byte-level lies
    let raw: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", vec![]),
        ("garbage", b"this is not a model at all".to_vec()),
        ("header length u64::MAX", u64::MAX.to_le_bytes().to_vec()),
        ("header length past the end", {
            let mut v = 1_000_000u64.to_le_bytes().to_vec();
            v.extend_from_slice(b"{}      ");
            v
        }),
        ("truncated model", {
            let b = ModelParts::tiny().bytes();
            b[..b.len() / 2].to_vec()
        }),
        ("data offsets past the end", {
            let mut p = ModelParts::tiny();
            p.tensors[0].shape = vec![1 << 40];
            p.bytes()
        }),
    ];
    for (i, (name, bytes)) in raw.into_iter().enumerate() {
        let path = dir.join(format!("r{i}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        cases.push(eval("model file", name, Refuse, &path));
    }
    // valid models paired with data they cannot take
    ModelParts::tiny().write(&dir.join("valid.safetensors"));
    let pairings = [
        (
            "two classes on MNIST's ten labels",
            Preset::Tiny.config().with_classes(2),
        ),
        (
            "32x32 model on 28x28 MNIST",
            Preset::Tiny.config().for_input(1, 32, 32),
        ),
    ];
    for (i, (name, config)) in pairings.into_iter().enumerate() {
        let path = dir.join(format!("pair{i}.safetensors"));
        ModelParts::from_config(&config).write(&path);
        cases.push(eval("model + data", name, Refuse, &path));
        let args: [&dyn AsRef<std::ffi::OsStr>; 9] = [
            &"prune",
            &"--model",
            &path,
            &"--sparsity",
            &"0.5",
            &"--device",
            &"cpu",
            &"--out",
            &dir.join("p.safetensors"),
        ];
        cases.push(Case::new(
            "model + data",
            &format!("{name} (prune)"),
            Refuse,
            &args,
        ));
        cases.push(Case::sweep(
            "model + data",
            &format!("{name} (sweep --baseline)"),
            &dir.join("valid.safetensors"),
            Some(&path),
            &dir.join(format!("sweep-pair{i}")),
        ));
        let out = dir.join(format!("pair{i}-copy.safetensors"));
        cases.push(Case::new(
            "model + data",
            &format!("{name}: export alone is fine"),
            Succeed,
            &[&"export", &"--model", &path, &"--out", &out],
        ));
    }
    // hostile models given to the commands that take a second model
    let nan = dir.join("nan.safetensors");
    ModelParts::tiny()
        .tensor("primary.weight", |t| {
            t.data[40..44].copy_from_slice(&f32::NAN.to_le_bytes())
        })
        .write(&nan);
    cases.push(Case::new(
        "model file",
        "NaN weights as train --init",
        Refuse,
        &[
            &"train",
            &"--init",
            &nan,
            &"--limit-train",
            &"16",
            &"--device",
            &"cpu",
            &"--out",
            &dir.join("init-run"),
        ],
    ));
    let tiny = dir.join("valid.safetensors");
    cases.push(Case::sweep(
        "model file",
        "NaN weights as sweep --baseline",
        &tiny,
        Some(&nan),
        &dir.join("sweep"),
    ));
    // unusual but valid: a model without decoder
    let no_decoder = dir.join("no-decoder.safetensors");
    ModelParts::from_config(&Preset::Tiny.config().with_decoder_hidden(vec![])).write(&no_decoder);
    cases.push(eval("model file", "no decoder (valid)", Succeed, &no_decoder));
    let digit = dir.join("digit.png");
    std::fs::write(&digit, png_digit()).unwrap();
    cases.push(Case::new(
        "model file",
        "no decoder, inspect (valid)",
        Succeed,
        &[&"inspect", &"--model", &no_decoder, &"--image", &digit],
    ));
    cases
}
