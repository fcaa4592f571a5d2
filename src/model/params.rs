//! Conversion between the network and named host tensors in the file layout
//! (the layout of the reference fixture and of sparsecaps model files).
//!
//! File layout: `conv1.weight` `[C1, C, k, k]`, `conv1.bias` `[C1]`, `primary.weight`
//! `[T*D, C1, k, k]`, `primary.bias` `[T*D]`, `digit.weight` `[N, J, E, D]`, `digit.bias`
//! `[J, E]`, `decoder.fc{1,2,..}.weight` `[out, in]` (PyTorch layout), `decoder.fc*.bias`,
//! and for a backbone `backbone.stem.*` and `backbone.block{i}.{a,b,shortcut}.*`: `weight`
//! `[out, in / groups, k, k]` and `bn.{gamma,beta,mean,var}` `[out]`.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::backbone::Backbone;
use super::capsnet::{CapsNet, Compaction, linear_from};
use super::config::{CapsNetConfig, ConfigError};

/// Names of the prunable tensors (conv1, the primary convolution and the class capsules'
/// W), in the order masks and sparsity are reported.
pub const PRUNABLE: [&str; 3] = ["conv1.weight", "primary.weight", "digit.weight"];

/// A tensor on the host: its shape and row-major f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl HostTensor {
    /// Reads a device tensor back to the host.
    pub fn from_tensor<const R: usize>(t: Tensor<R>) -> Self {
        let shape = t.dims().to_vec();
        let values = t.into_data().try_into_vec_as::<f32>().unwrap_or_default();
        Self { shape, values }
    }

    /// Uploads to a device.
    pub fn to_tensor<const R: usize>(&self, device: &Device) -> Tensor<R> {
        Tensor::from_data(TensorData::new(self.values.clone(), self.shape.clone()), device)
    }

    /// The entries `keep` (in that order) along `axis`, everything else whole.
    pub fn select(&self, axis: usize, keep: &[usize]) -> HostTensor {
        let outer: usize = self.shape[..axis].iter().product();
        let n = self.shape[axis];
        let inner: usize = self.shape[axis + 1..].iter().product();
        let mut values = Vec::with_capacity(outer * keep.len() * inner);
        for o in 0..outer {
            for &i in keep {
                let at = (o * n + i) * inner;
                values.extend_from_slice(&self.values[at..at + inner]);
            }
        }
        let mut shape = self.shape.clone();
        shape[axis] = keep.len();
        HostTensor { shape, values }
    }
}

/// Why named tensors cannot become a network.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A tensor is missing.
    #[error("tensor '{0}' is missing")]
    Missing(String),
    /// A tensor has the wrong shape for the config.
    #[error("tensor '{name}' has shape {found:?}, the config needs {expected:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape found.
        found: Vec<usize>,
        /// Shape expected.
        expected: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity (also an f64 value too large for f32).
    #[error("tensor '{name}' holds a non-finite value ({value}) at element {index}")]
    NonFinite {
        /// Tensor name.
        name: String,
        /// First bad element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A tensor that must not be negative (a BatchNorm variance) holds a negative value.
    #[error("tensor '{name}' holds a negative value ({value}) at element {index}")]
    Negative {
        /// Tensor name.
        name: String,
        /// First bad element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The config is invalid.
    #[error("invalid model config: {0}")]
    Config(#[from] ConfigError),
    /// The compaction record does not fit the config.
    #[error("invalid compaction record: {0}")]
    Compaction(String),
}

impl Compaction {
    /// Where each kept capsule sits among the live types' positions (`cells` per type): the
    /// `select` a compaction writes for `capsules` of `live_types`.
    pub fn positions_of(capsules: &[usize], live_types: &[usize], cells: usize) -> Vec<usize> {
        capsules
            .iter()
            .map(|&i| {
                let lt = live_types.iter().position(|&t| t == i / cells).unwrap_or(0);
                lt * cells + i % cells
            })
            .collect()
    }

    /// Checks the record against the dense config (`cells` capsules per type).
    pub fn check(&self, c: &CapsNetConfig, cells: usize) -> Result<(), ParamsError> {
        let bad = |m: &str| Err(ParamsError::Compaction(m.to_string()));
        if self.capsules.is_empty() || self.live_types.is_empty() || self.conv1_channels.is_empty() {
            return bad("it keeps no capsule, capsule type or conv1 channel; such a model computes nothing");
        }
        let ascending =
            |v: &[usize], limit: usize| v.windows(2).all(|w| w[0] < w[1]) && v.iter().all(|&i| i < limit);
        if !ascending(&self.conv1_channels, c.conv1_channels) {
            return bad("conv1 channel indices out of range or not ascending");
        }
        if !ascending(&self.live_types, c.types) {
            return bad("capsule type indices out of range or not ascending");
        }
        if !ascending(&self.capsules, c.types * cells) {
            return bad("capsule indices out of range or not ascending");
        }
        if self
            .capsules
            .iter()
            .any(|i| !self.live_types.contains(&(i / cells)))
        {
            return bad("a kept capsule belongs to a removed type");
        }
        if self
            .live_types
            .iter()
            .any(|t| !self.capsules.iter().any(|i| i / cells == *t))
        {
            return bad("a live capsule type keeps no capsule");
        }
        let positions = self.live_types.len() * cells;
        match &self.select {
            // the only selection that computes the listed capsules (what compaction writes)
            Some(sel) if *sel != Self::positions_of(&self.capsules, &self.live_types, cells) => {
                bad("capsule selection does not match the kept capsules")
            }
            None if self.capsules.len() != positions => bad("capsule count does not match the live types"),
            _ => Ok(()),
        }
    }
}

/// Permutes `[N, A, B, C]` data to `[N, B, C, A]` on the host (digit W, internal -> file).
fn permute_last3_rotate(values: &[f32], n: usize, a: usize, b: usize, c: usize, to_file: bool) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for i in 0..n {
        let base = i * a * b * c;
        for x in 0..a {
            for y in 0..b {
                for z in 0..c {
                    // internal [i, x=d, y=j, z=e]  <->  file [i, y=j, z=e, x=d]
                    let internal = base + (x * b + y) * c + z;
                    let file = base + (y * c + z) * a + x;
                    if to_file {
                        out[file] = values[internal];
                    } else {
                        out[internal] = values[file];
                    }
                }
            }
        }
    }
    out
}

/// Converts a `[N, D, J*E]` digit tensor (weights or their gradient) to the file layout
/// `[N, J, E, D]`.
pub fn digit_to_file(t: HostTensor, classes: usize, class_dim: usize) -> HostTensor {
    let (n, d) = (t.shape[0], t.shape[1]);
    HostTensor {
        values: permute_last3_rotate(&t.values, n, d, classes, class_dim, true),
        shape: vec![n, classes, class_dim, d],
    }
}

/// Transposes a 2-D host tensor.
fn transpose2(t: &HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut values = vec![0.0; t.values.len()];
    for i in 0..r {
        for j in 0..c {
            values[j * r + i] = t.values[i * c + j];
        }
    }
    HostTensor {
        shape: vec![c, r],
        values,
    }
}

/// Tensor `name` from `get`, checked: present, of shape `expected`, all values finite.
fn fetch_checked(
    get: &mut impl FnMut(&str) -> Option<HostTensor>,
    name: &str,
    expected: Vec<usize>,
) -> Result<HostTensor, ParamsError> {
    let t = get(name).ok_or_else(|| ParamsError::Missing(name.to_string()))?;
    if t.shape != expected || t.values.len() != expected.iter().product::<usize>() {
        return Err(ParamsError::Shape {
            name: name.to_string(),
            found: t.shape,
            expected,
        });
    }
    if let Some(index) = t.values.iter().position(|v| !v.is_finite()) {
        return Err(ParamsError::NonFinite {
            name: name.to_string(),
            index,
            value: t.values[index],
        });
    }
    Ok(t)
}

/// The decoder layers of `c` (none without a decoder) from `decoder.fc{i}.*` tensors in the
/// file layout (weights `[out, in]`).
fn decoder_from_named(
    c: &CapsNetConfig,
    fetch: &mut impl FnMut(&str, Vec<usize>) -> Result<HostTensor, ParamsError>,
    device: &Device,
) -> Result<Vec<Linear>, ParamsError> {
    let mut decoder = Vec::new();
    if !c.has_decoder() {
        return Ok(decoder);
    }
    let mut d_in = c.classes * c.class_dim;
    let sizes: Vec<usize> = c.decoder_hidden.iter().copied().chain([c.pixels()]).collect();
    for (i, &d_out) in sizes.iter().enumerate() {
        let w = fetch(&format!("decoder.fc{}.weight", i + 1), vec![d_out, d_in])?;
        let b = fetch(&format!("decoder.fc{}.bias", i + 1), vec![d_out])?;
        let w = transpose2(&w);
        decoder.push(linear_from(
            TensorData::new(w.values, w.shape),
            TensorData::new(b.values, b.shape),
            device,
        ));
        d_in = d_out;
    }
    Ok(decoder)
}

impl CapsNet {
    /// The ids of every parameter in a fixed order (conv1, primary and digit weight and
    /// bias, then each decoder layer's weight and bias); an optimiser's state is keyed by
    /// them, so a resumed run gives its reloaded network the ids it trained with.
    pub fn param_ids(&self) -> Vec<u64> {
        let mut ids = vec![
            self.conv1_weight.id.val(),
            self.conv1_bias.id.val(),
            self.primary_weight.id.val(),
            self.primary_bias.id.val(),
            self.digit_weight.id.val(),
            self.digit_bias.id.val(),
        ];
        for layer in &self.decoder {
            ids.push(layer.weight.id.val());
            if let Some(b) = &layer.bias {
                ids.push(b.id.val());
            }
        }
        if let Some(b) = &self.backbone {
            ids.extend(b.param_ids());
        }
        ids
    }

    /// Gives the parameters the ids of [`CapsNet::param_ids`] order; false (and nothing
    /// changed) if the count differs.
    pub fn set_param_ids(&mut self, ids: &[u64]) -> bool {
        if ids.len() != self.param_ids().len() {
            return false;
        }
        let mut it = ids.iter().map(|&v| burn::module::ParamId::from(v));
        let mut next = || it.next().unwrap_or_default();
        self.conv1_weight.id = next();
        self.conv1_bias.id = next();
        self.primary_weight.id = next();
        self.primary_bias.id = next();
        self.digit_weight.id = next();
        self.digit_bias.id = next();
        for layer in &mut self.decoder {
            layer.weight.id = next();
            if let Some(b) = &mut layer.bias {
                b.id = next();
            }
        }
        if let Some(b) = &mut self.backbone {
            b.set_param_ids(&mut next);
        }
        true
    }

    /// All parameters as named host tensors in the file layout.
    pub fn to_named(&self) -> Vec<(String, HostTensor)> {
        let c = &self.config;
        let mut out = vec![
            (
                "conv1.weight".into(),
                HostTensor::from_tensor(self.conv1_weight.val()),
            ),
            (
                "conv1.bias".into(),
                HostTensor::from_tensor(self.conv1_bias.val()),
            ),
            (
                "primary.weight".into(),
                HostTensor::from_tensor(self.primary_weight.val()),
            ),
            (
                "primary.bias".into(),
                HostTensor::from_tensor(self.primary_bias.val()),
            ),
            (
                "digit.weight".into(),
                digit_to_file(
                    HostTensor::from_tensor(self.digit_weight.val()),
                    c.classes,
                    c.class_dim,
                ),
            ),
            (
                "digit.bias".into(),
                HostTensor::from_tensor(self.digit_bias.val()),
            ),
        ];
        for (i, layer) in self.decoder.iter().enumerate() {
            let w = HostTensor::from_tensor(layer.weight.val());
            out.push((format!("decoder.fc{}.weight", i + 1), transpose2(&w)));
            if let Some(b) = &layer.bias {
                out.push((
                    format!("decoder.fc{}.bias", i + 1),
                    HostTensor::from_tensor(b.val()),
                ));
            }
        }
        if let Some(b) = &self.backbone {
            b.to_named(&mut out);
        }
        out
    }

    /// Builds a network from named host tensors in the file layout; every shape is checked
    /// against `config`.
    pub fn from_named(
        config: &CapsNetConfig,
        get: impl FnMut(&str) -> Option<HostTensor>,
        device: &Device,
    ) -> Result<Self, ParamsError> {
        Self::from_named_compact(config, None, get, device)
    }

    /// [`CapsNet::from_named`] for a compact network: shapes follow what `compact` keeps.
    pub fn from_named_compact(
        config: &CapsNetConfig,
        compact: Option<Compaction>,
        mut get: impl FnMut(&str) -> Option<HostTensor>,
        device: &Device,
    ) -> Result<Self, ParamsError> {
        let geo = config.geometry()?;
        let c = config;
        let (n, types, c1) = match &compact {
            Some(k) => {
                k.check(c, geo.cells())?;
                (k.capsules.len(), k.live_types.len(), k.conv1_channels.len())
            }
            None => (c.types * geo.cells(), c.types, c.conv1_channels),
        };
        let mut fetch = |name: &str, expected: Vec<usize>| fetch_checked(&mut get, name, expected);
        let (k1, k2, td) = (c.conv1_kernel, c.primary_kernel, types * c.primary_dim);
        let conv1_w = fetch("conv1.weight", vec![c1, c.conv1_inputs(), k1, k1])?;
        let conv1_b = fetch("conv1.bias", vec![c1])?;
        let prim_w = fetch("primary.weight", vec![td, c1, k2, k2])?;
        let prim_b = fetch("primary.bias", vec![td])?;
        let digit = fetch("digit.weight", vec![n, c.classes, c.class_dim, c.primary_dim])?;
        let beta = fetch("digit.bias", vec![c.classes, c.class_dim])?;
        let digit_internal = HostTensor {
            values: permute_last3_rotate(&digit.values, n, c.primary_dim, c.classes, c.class_dim, false),
            shape: vec![n, c.primary_dim, c.classes * c.class_dim],
        };
        let decoder = decoder_from_named(c, &mut fetch, device)?;
        let backbone = match c.backbone_plan() {
            Some(plan) => Some(Backbone::from_named(
                &plan,
                |name, shape| fetch(name, shape),
                device,
            )?),
            None => None,
        };
        let p = |t: HostTensor| TensorData::new(t.values, t.shape);
        Ok(Self {
            backbone,
            conv1_weight: Param::from_data(p(conv1_w), device),
            conv1_bias: Param::from_data(p(conv1_b), device),
            primary_weight: Param::from_data(p(prim_w), device),
            primary_bias: Param::from_data(p(prim_b), device),
            digit_weight: Param::from_data(p(digit_internal), device),
            digit_bias: Param::from_data(p(beta), device),
            decoder,
            config: c.clone(),
            compact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compaction_record_must_select_the_capsules_it_lists() {
        let c = crate::model::Preset::Tiny.config();
        let cells = 36;
        // capsules 1 and 2 of type 0, capsule 0 of type 3: positions 1, 2 and 36
        let good = Compaction {
            conv1_channels: vec![0, 5],
            live_types: vec![0, 3],
            capsules: vec![1, 2, 3 * cells],
            select: Some(vec![1, 2, cells]),
        };
        assert!(good.check(&c, cells).is_ok());
        for select in [vec![2, 1, cells], vec![0, 0, 0], vec![1, 2, cells + 1]] {
            let bad = Compaction {
                select: Some(select.clone()),
                ..good.clone()
            };
            let e = bad.check(&c, cells).unwrap_err().to_string();
            assert!(e.contains("selection does not match"), "{select:?}: {e}");
        }
        let idle_type = Compaction {
            live_types: vec![0, 1, 3],
            select: Some(vec![1, 2, 2 * cells]),
            ..good.clone()
        };
        let e = idle_type.check(&c, cells).unwrap_err().to_string();
        assert!(e.contains("keeps no capsule"), "{e}");
    }

    #[test]
    fn digit_layout_round_trips() {
        let (n, d, j, e) = (2, 3, 4, 5);
        let values: Vec<f32> = (0..n * d * j * e).map(|v| v as f32).collect();
        let internal = HostTensor {
            shape: vec![n, d, j * e],
            values: values.clone(),
        };
        let file = digit_to_file(internal, j, e);
        assert_eq!(file.shape, vec![n, j, e, d]);
        // file[i, jj, ee, dd] == internal[i, dd, jj * e + ee]
        let (i, jj, ee, dd) = (1, 2, 3, 1);
        let f = ((i * j + jj) * e + ee) * d + dd;
        let k = (i * d + dd) * (j * e) + jj * e + ee;
        assert_eq!(file.values[f], values[k]);
        let back = permute_last3_rotate(&file.values, n, d, j, e, false);
        assert_eq!(back, values);
    }

    #[test]
    fn named_round_trip_rebuilds_the_same_network() {
        let dev = Device::flex();
        let cfg = crate::model::Preset::Tiny.config();
        let net = CapsNet::init(&cfg, 1, &dev).unwrap();
        let named = net.to_named();
        let map: std::collections::HashMap<_, _> = named.iter().cloned().collect();
        let back = CapsNet::from_named(&cfg, |k| map.get(k).cloned(), &dev).unwrap();
        assert_eq!(back.to_named(), named);
        let err = CapsNet::from_named(&cfg, |k| (k != "digit.bias").then(|| map[k].clone()), &dev);
        assert!(matches!(err, Err(ParamsError::Missing(_))));
    }
}
