//! Pruning: capsule survival and sparsity.

pub mod survival;

pub use survival::{AliveMap, LayerSparsity, Survival, alive_map, global_sparsity, survival};
