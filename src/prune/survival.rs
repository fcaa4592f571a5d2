//! Capsule survival: which primary capsules are still alive, and how sparse the prunable
//! weights are.

use crate::model::{CapsNet, HostTensor};

/// The alive map of the primary capsules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliveMap {
    /// Capsule types T.
    pub types: usize,
    /// Grid height.
    pub grid_h: usize,
    /// Grid width.
    pub grid_w: usize,
    /// `alive[t * grid_h * grid_w + y * grid_w + x]`.
    pub alive: Vec<bool>,
}

impl AliveMap {
    /// Alive capsules K.
    pub fn alive_count(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// All capsules N.
    pub fn capsules(&self) -> usize {
        self.alive.len()
    }

    /// Types with at least one alive capsule.
    pub fn alive_types(&self) -> usize {
        let cells = (self.grid_h * self.grid_w).max(1);
        self.alive.chunks(cells).filter(|c| c.iter().any(|a| *a)).count()
    }
}

/// Whether each capsule type's primary filters or biases hold a non-zero value.
///
/// # Shapes
/// - `primary_weight`: `[T * D, C1, k, k]`, `primary_bias`: `[T * D]`
pub fn live_types(primary_weight: &HostTensor, primary_bias: &HostTensor, types: usize) -> Vec<bool> {
    let td = primary_bias.values.len();
    let dim = td / types.max(1);
    let filter = primary_weight.values.len() / td.max(1);
    (0..types)
        .map(|t| {
            let ch = t * dim..(t + 1) * dim;
            primary_bias.values[ch.clone()].iter().any(|v| *v != 0.0)
                || primary_weight.values[ch.start * filter..ch.end * filter]
                    .iter()
                    .any(|v| *v != 0.0)
        })
        .collect()
}

/// Whether each row (first axis) of a tensor holds a non-zero value.
pub fn nonzero_rows(t: &HostTensor) -> Vec<bool> {
    let n = t.shape.first().copied().unwrap_or(0);
    let row = t.values.len() / n.max(1);
    (0..n)
        .map(|i| t.values[i * row..(i + 1) * row].iter().any(|v| *v != 0.0))
        .collect()
}

/// Computes the alive map of a dense network from its weights: capsule i of type t is
/// alive iff its row of W has a non-zero weight and type t's primary filters or biases are
/// not all zero.
///
/// # Shapes
/// - `digit`: W rows, `[N, ...]` (any layout that keeps capsule i's weights contiguous)
/// - `primary_weight`: `[T * D, C1, k, k]`, `primary_bias`: `[T * D]`
pub fn alive_map(
    digit: &HostTensor,
    primary_weight: &HostTensor,
    primary_bias: &HostTensor,
    types: usize,
    grid_h: usize,
    grid_w: usize,
) -> AliveMap {
    let type_live = live_types(primary_weight, primary_bias, types);
    let cells = (grid_h * grid_w).max(1);
    let alive = nonzero_rows(digit)
        .into_iter()
        .enumerate()
        .map(|(i, row)| row && type_live.get(i / cells).copied().unwrap_or(false))
        .collect();
    AliveMap {
        types,
        grid_h,
        grid_w,
        alive,
    }
}

/// Zero counts of one prunable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSparsity {
    /// Tensor name (`conv1.weight`, `primary.weight`, `digit.weight`).
    pub name: &'static str,
    /// Weights equal to 0.
    pub zeros: usize,
    /// All weights.
    pub total: usize,
}

impl LayerSparsity {
    /// Fraction of zero weights.
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.total.max(1) as f64
    }
}

/// Fraction of zero weights over several layers together.
pub fn global_sparsity(layers: &[LayerSparsity]) -> f64 {
    let zeros: usize = layers.iter().map(|l| l.zeros).sum();
    let total: usize = layers.iter().map(|l| l.total).sum();
    zeros as f64 / total.max(1) as f64
}

fn count(name: &'static str, t: &HostTensor) -> LayerSparsity {
    LayerSparsity {
        name,
        zeros: t.values.iter().filter(|v| **v == 0.0).count(),
        total: t.values.len(),
    }
}

/// Survival facts of a model, read back from its device.
#[derive(Debug, Clone)]
pub struct Survival {
    /// Alive capsules.
    pub map: AliveMap,
    /// Sparsity of conv1, primary and digit weights.
    pub layers: Vec<LayerSparsity>,
}

impl Survival {
    /// Global sparsity relative to the dense network's prunable weights: a compact network's
    /// removed weights count as pruned.
    pub fn dense_sparsity(&self, config: &crate::model::CapsNetConfig) -> f64 {
        let dense: usize = dense_sizes(config).iter().sum();
        let nonzero: usize = self.layers.iter().map(|l| l.total - l.zeros).sum();
        1.0 - nonzero as f64 / dense.max(1) as f64
    }

    /// Sparsity of conv1, primary and digit weights, each relative to the dense network's
    /// layer (as [`Survival::dense_sparsity`]): a compact network's removed weights count as
    /// pruned. For a dense network, each layer's own [`LayerSparsity::sparsity`].
    pub fn dense_layer_sparsity(&self, config: &crate::model::CapsNetConfig) -> [f64; 3] {
        let dense = dense_sizes(config);
        [0, 1, 2].map(|i| match self.layers.get(i) {
            Some(l) => 1.0 - (l.total - l.zeros) as f64 / dense[i].max(1) as f64,
            None => 0.0,
        })
    }
}

/// Weights of conv1, the primary capsules and W in the dense network of `config`.
fn dense_sizes(config: &crate::model::CapsNetConfig) -> [usize; 3] {
    let k1 = config.conv1_kernel * config.conv1_kernel;
    let k2 = config.primary_kernel * config.primary_kernel;
    [
        config.conv1_channels * config.conv1_inputs() * k1,
        config.types * config.primary_dim * config.conv1_channels * k2,
        config.capsules() * config.primary_dim * config.classes * config.class_dim,
    ]
}

/// Reads a model's prunable weights and computes its alive map (in the dense network's
/// capsule indices, also for a compact network) and sparsity.
pub fn survival(model: &CapsNet) -> Survival {
    let [conv1, pw, digit] = super::mask::prunable_weights(model);
    let pb = HostTensor::from_tensor(model.primary_bias.val());
    let g = model.geometry();
    let cells = g.cells().max(1);
    let c = &model.config;
    let type_live = live_types(&pw, &pb, model.primary_types());
    let local_type = |original: usize| -> Option<usize> {
        let t = original / cells;
        match &model.compact {
            Some(k) => k.live_types.iter().position(|&lt| lt == t),
            None => Some(t),
        }
    };
    let mut alive = vec![false; c.types * cells];
    for (row_alive, original) in nonzero_rows(&digit).into_iter().zip(model.capsule_indices()) {
        let live = local_type(original)
            .and_then(|t| type_live.get(t).copied())
            .unwrap_or(false);
        if let Some(a) = alive.get_mut(original) {
            *a = row_alive && live;
        }
    }
    Survival {
        map: AliveMap {
            types: c.types,
            grid_h: g.grid_h,
            grid_w: g.grid_w,
            alive,
        },
        layers: vec![
            count("conv1.weight", &conv1),
            count("primary.weight", &pw),
            count("digit.weight", &digit),
        ],
    }
}

/// `info` with a model's global and per-layer sparsity recorded (what every exported or
/// pruned model file carries).
pub fn with_sparsity(mut info: crate::export::ModelInfo, model: &CapsNet) -> crate::export::ModelInfo {
    let s = survival(model);
    info.sparsity = Some(s.dense_sparsity(&model.config));
    info.layer_sparsity = Some(layer_sparsity_named(&s, &model.config));
    info
}

/// Each prunable layer's name with its sparsity relative to the dense layer.
pub fn layer_sparsity_named(s: &Survival, config: &crate::model::CapsNetConfig) -> Vec<(String, f64)> {
    s.layers
        .iter()
        .zip(s.dense_layer_sparsity(config))
        .map(|(l, sparsity)| (l.name.to_string(), sparsity))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, values: Vec<f32>) -> HostTensor {
        HostTensor { shape, values }
    }

    #[test]
    fn dead_rows_and_dead_types_kill_capsules() {
        // 2 types, D = 1, 1x2 grid -> 4 capsules, W rows of 2 values
        let digit = t(vec![4, 2], vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.2, 0.0]);
        // type 1's filter and bias are zero
        let pw = t(vec![2, 1, 1, 1], vec![0.3, 0.0]);
        let pb = t(vec![2], vec![0.0, 0.0]);
        let m = alive_map(&digit, &pw, &pb, 2, 1, 2);
        assert_eq!(m.alive, vec![true, false, false, false]);
        assert_eq!((m.alive_count(), m.capsules(), m.alive_types()), (1, 4, 1));
        let pb = t(vec![2], vec![0.0, 0.1]);
        assert_eq!(alive_map(&digit, &pw, &pb, 2, 1, 2).alive_count(), 3);
    }

    #[test]
    fn compact_sparsity_counts_removed_weights_as_pruned() {
        let dev = burn::prelude::Device::flex();
        let cfg = crate::model::Preset::Tiny.config();
        let net = CapsNet::init(&cfg, 2, &dev).unwrap();
        let masks = crate::prune::magnitude_masks(&net, 0.9);
        let pruned = crate::prune::apply_masks(net, &masks.to_device(&dev));
        let dense = survival(&pruned);
        let small = survival(&crate::prune::compact(&pruned).unwrap());
        assert!((dense.dense_sparsity(&cfg) - global_sparsity(&dense.layers)).abs() < 1e-12);
        // the folded conv1 channels' biases are gone too, but no non-zero weight is lost
        assert!(small.dense_sparsity(&cfg) >= dense.dense_sparsity(&cfg) - 1e-12);
        assert!((small.dense_sparsity(&cfg) - 0.9).abs() < 0.01);
        // per layer too: as measured on a dense network, and never less once compacted
        let (d, c) = (dense.dense_layer_sparsity(&cfg), small.dense_layer_sparsity(&cfg));
        for i in 0..3 {
            assert!((d[i] - dense.layers[i].sparsity()).abs() < 1e-12, "layer {i}");
            assert!(c[i] >= d[i] - 1e-12, "layer {i}: {} < {}", c[i], d[i]);
        }
        assert!(c.iter().any(|s| *s > 0.0));
    }

    #[test]
    fn sparsity_counts_zeros() {
        let l = count("digit.weight", &t(vec![4], vec![0.0, 1.0, 0.0, 2.0]));
        assert_eq!(l.sparsity(), 0.5);
        let g = global_sparsity(&[l, count("conv1.weight", &t(vec![4], vec![0.0; 4]))]);
        assert_eq!(g, 0.75);
    }
}
