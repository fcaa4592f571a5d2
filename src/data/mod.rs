//! Data: the IDX reader, the datasets and batching.

pub mod augment;
pub mod dataset;
pub mod idx;

pub use augment::Augment;
pub use dataset::{DataError, DataSource, Dataset, Split};
pub use idx::IdxError;
