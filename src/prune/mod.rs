//! Pruning: masks, exact-sparsity magnitude pruning, capsule survival and sparsity.

pub mod backbone;
pub mod capsules;
pub mod channels;
pub mod compact;
pub mod cost;
pub mod lobster;
pub mod magnitude;
pub mod mask;
pub mod method;
pub mod survival;

pub use compact::{CompactError, compact, expand};
pub use magnitude::{magnitude_masks, max_magnitude, threshold_masks};
pub use mask::{DeviceMasks, Masks, PRUNABLE, apply_masks};
pub use method::{PruneMethod, prune_to};
pub use survival::{AliveMap, LayerSparsity, Survival, alive_map, global_sparsity, survival, with_sparsity};
