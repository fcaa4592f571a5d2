//! Data: the IDX, image-folder and CIFAR-10 binary readers, the datasets, augmentation and
//! batching.

pub mod augment;
pub mod cifar_bin;
pub mod dataset;
pub mod folder;
pub mod idx;
pub mod resident;
pub mod split;

pub use augment::Augment;
pub use dataset::{DataError, DataSource, Dataset, LoadProgress, Split};
pub use idx::IdxError;
pub use resident::DeviceSplit;
