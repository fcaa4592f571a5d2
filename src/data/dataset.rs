//! Datasets: MNIST built into the binary, Fashion-MNIST, CIFAR-10, or a folder holding
//! IDX files, an image-folder dataset (`train/CLASS/*`, `test/CLASS/*`) or the CIFAR-10
//! binary batches.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::idx::{IdxError, parse_images, parse_labels};
pub use super::split::Split;

#[cfg(feature = "embedded-data")]
static MNIST_TRAIN_IMAGES: &[u8] = include_bytes!("../../assets/mnist/train-images-idx3-ubyte.gz");
#[cfg(feature = "embedded-data")]
static MNIST_TRAIN_LABELS: &[u8] = include_bytes!("../../assets/mnist/train-labels-idx1-ubyte.gz");
#[cfg(feature = "embedded-data")]
static MNIST_TEST_IMAGES: &[u8] = include_bytes!("../../assets/mnist/t10k-images-idx3-ubyte.gz");
#[cfg(feature = "embedded-data")]
static MNIST_TEST_LABELS: &[u8] = include_bytes!("../../assets/mnist/t10k-labels-idx1-ubyte.gz");
/// Where a build without the `embedded-data` feature reads `--data mnist` from.
#[cfg(not(feature = "embedded-data"))]
const MNIST_ENV: &str = "SPARSECAPS_MNIST";

/// Environment variable naming a Fashion-MNIST folder (used instead of the Debian path).
pub const FASHION_ENV: &str = "SPARSECAPS_FASHION_MNIST";
/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Environment variable naming a CIFAR-10 folder (checked first).
pub const CIFAR10_ENV: &str = "SPARSECAPS_CIFAR10";
/// Where `--data cifar10` looks after `$SPARSECAPS_CIFAR10`, in order: `~/.local/share/`
/// below the home folder, then relative to the working folder.
pub const CIFAR10_DIRS: [&str; 2] = [".local/share/sparsecaps/cifar-10", "../shared/datasets/cifar-10"];

/// The four IDX files of a dataset folder (each also accepted without `.gz`).
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// MNIST, built into the binary.
    Mnist,
    /// Fashion-MNIST from `$SPARSECAPS_FASHION_MNIST` or `/usr/share/datasets/fashion-mnist`.
    FashionMnist,
    /// CIFAR-10 from `$SPARSECAPS_CIFAR10` or [`CIFAR10_DIRS`] (image folders or the
    /// binary release).
    Cifar10,
    /// A folder with the four IDX files, an image-folder dataset or the CIFAR-10 batches.
    Dir(PathBuf),
}

impl FromStr for DataSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "mnist" => DataSource::Mnist,
            "fashion-mnist" | "fashion" | "fashion_mnist" => DataSource::FashionMnist,
            "cifar10" | "cifar-10" => DataSource::Cifar10,
            _ => DataSource::Dir(PathBuf::from(s)),
        })
    }
}

serde_as_text!(DataSource);

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Mnist => f.write_str("mnist"),
            DataSource::FashionMnist => f.write_str("fashion-mnist"),
            DataSource::Cifar10 => f.write_str("cifar10"),
            DataSource::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Why a dataset cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An IDX file is malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// A file cannot be read (not a regular file, too large, I/O error).
    #[error(transparent)]
    Read(#[from] crate::fsio::ReadError),
    /// The images or labels do not fit the model they are used with.
    #[error("{0}")]
    ModelMismatch(String),
    /// A file is missing.
    #[error("{0}: no such file (expected {1}[.gz])")]
    Missing(PathBuf, &'static str),
    /// Fashion-MNIST was not found.
    #[error(
        "Fashion-MNIST not found: set {FASHION_ENV} to its folder or install Debian's dataset-fashion-mnist ({FASHION_DEBIAN_DIR})"
    )]
    FashionMissing,
    /// A build without the embedded MNIST was asked for `mnist`.
    #[error(
        "this build has no built-in MNIST: set SPARSECAPS_MNIST to a folder of its IDX files, or give --data DIR"
    )]
    MnistMissing,
    /// Images and labels disagree.
    #[error("{split} split: {images} images but {labels} labels")]
    CountMismatch {
        /// Which split.
        split: &'static str,
        /// Image count.
        images: usize,
        /// Label count.
        labels: usize,
    },
    /// Train and test images differ in size (channels, height, width).
    #[error("train images are {0}x{1}x{2} (channels x height x width) but test images are {3}x{4}x{5}")]
    SizeMismatch(usize, usize, usize, usize, usize, usize),
    /// A label is out of range.
    #[error("{split} split: label {label} at index {index} is not below {classes}")]
    Label {
        /// Which split.
        split: &'static str,
        /// The label.
        label: u8,
        /// Its index.
        index: usize,
        /// Number of classes allowed.
        classes: usize,
    },
    /// A split has no images.
    #[error("{0} split is empty")]
    Empty(&'static str),
    /// An image-folder dataset is malformed.
    #[error(transparent)]
    Folder(#[from] super::folder::FolderError),
    /// The CIFAR-10 binary batches are malformed.
    #[error(transparent)]
    CifarBin(#[from] super::cifar_bin::CifarBinError),
    /// CIFAR-10 was not found.
    #[error(
        "CIFAR-10 not found: set {CIFAR10_ENV} to a folder with train/ and test/ class folders or the binary batches (looked in ~/{}, {})", CIFAR10_DIRS[0], CIFAR10_DIRS[1]
    )]
    Cifar10Missing,
    /// The folder does not exist.
    #[error("{0}: no such folder")]
    NoFolder(PathBuf),
    /// A file was given where a dataset folder belongs.
    #[error("{0}: a file, not a dataset folder (give the folder that holds it)")]
    NotAFolder(PathBuf),
    /// The folder holds no dataset this program reads.
    #[error(
        "{0}: not a dataset (expected the four IDX files, train/ and test/ class folders, or CIFAR-10's data_batch_*.bin)"
    )]
    NotADataset(PathBuf),
}

/// How far the loading of a dataset is (images decoded so far of all to decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Images done.
    pub done: usize,
    /// Images in all.
    pub total: usize,
}

/// Most classes an IDX dataset may have.
pub const MAX_CLASSES: usize = 10;

impl Dataset {
    /// [`Split::check_fits`] for both splits.
    pub fn check_fits(&self, input: (usize, usize, usize), classes: usize) -> Result<(), DataError> {
        self.train.check_fits(input, classes)?;
        self.test.check_fits(input, classes)
    }
}

/// A dataset: name, train and test splits.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Display name (`mnist`, `fashion-mnist`, `cifar10` or the folder).
    pub name: String,
    /// Class names by label; empty when the classes are just numbers (IDX datasets).
    pub classes: Vec<String>,
    /// Training images.
    pub train: Split,
    /// Test images.
    pub test: Split,
}

impl Dataset {
    /// Loads a dataset and checks it.
    pub fn load(source: &DataSource) -> Result<Self, DataError> {
        Self::load_with(source, (None, None), &|_| {})
    }

    /// Loads a dataset keeping at most `limits` = (train, test) images of each split (an
    /// image folder decodes only those), reporting how far decoding is to `progress`.
    pub fn load_with(
        source: &DataSource,
        limits: (Option<usize>, Option<usize>),
        progress: &(dyn Fn(LoadProgress) + Sync),
    ) -> Result<Self, DataError> {
        Self::load_until(source, limits, progress, &|| true)
    }

    /// [`Self::load_with`] that an image folder's decoding stops (with
    /// [`super::folder::FolderError::Cancelled`]) once `go_on` returns false; the other
    /// formats load in a moment and are not interrupted.
    pub fn load_until(
        source: &DataSource,
        limits: (Option<usize>, Option<usize>),
        progress: &(dyn Fn(LoadProgress) + Sync),
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self, DataError> {
        let name = source.to_string();
        let dir = match source {
            #[cfg(feature = "embedded-data")]
            DataSource::Mnist => {
                let files = [
                    (IDX_FILES[0].into(), MNIST_TRAIN_IMAGES.to_vec()),
                    (IDX_FILES[1].into(), MNIST_TRAIN_LABELS.to_vec()),
                    (IDX_FILES[2].into(), MNIST_TEST_IMAGES.to_vec()),
                    (IDX_FILES[3].into(), MNIST_TEST_LABELS.to_vec()),
                ];
                return Self::from_idx(name, files, limits);
            }
            // a slim build (e.g. to carry to a GPU machine) reads MNIST from a folder
            #[cfg(not(feature = "embedded-data"))]
            DataSource::Mnist => std::env::var_os(MNIST_ENV)
                .map(PathBuf::from)
                .ok_or(DataError::MnistMissing)?,
            DataSource::FashionMnist => fashion_dir().ok_or(DataError::FashionMissing)?,
            DataSource::Cifar10 => cifar10_dir().ok_or(DataError::Cifar10Missing)?,
            DataSource::Dir(dir) => dir.clone(),
        };
        if IDX_FILES.iter().any(|f| find_file(&dir, f).is_some()) {
            return Self::from_idx(name, read_dir_files(&dir)?, limits);
        }
        let (classes, train, test) = if super::folder::is_image_folder(&dir) {
            super::folder::load(&dir, limits, progress, go_on)?
        } else if let Some(batches) = super::cifar_bin::batches_dir(&dir) {
            super::cifar_bin::load(&batches, limits)?
        } else if dir.is_dir() {
            return Err(DataError::NotADataset(dir));
        } else if dir.exists() {
            return Err(DataError::NotAFolder(dir));
        } else {
            return Err(DataError::NoFolder(dir));
        };
        check_sizes(&train, &test)?;
        Ok(Self {
            name,
            classes,
            train,
            test,
        })
    }

    fn from_idx(
        name: String,
        files: [(String, Vec<u8>); 4],
        limits: (Option<usize>, Option<usize>),
    ) -> Result<Self, DataError> {
        let [(n0, b0), (n1, b1), (n2, b2), (n3, b3)] = files;
        let train = make_split("train", parse_images(&n0, b0)?, parse_labels(&n1, b1)?)?;
        let test = make_split("test", parse_images(&n2, b2)?, parse_labels(&n3, b3)?)?;
        check_sizes(&train, &test)?;
        let mut data = Self {
            name,
            classes: Vec::new(),
            train,
            test,
        };
        data.limit(limits.0, limits.1);
        Ok(data)
    }

    /// MNIST's test split alone (the built-in copy), without decompressing the training set.
    #[cfg(feature = "embedded-data")]
    pub fn mnist_test() -> Result<Split, DataError> {
        make_split(
            "test",
            parse_images(IDX_FILES[2], MNIST_TEST_IMAGES.to_vec())?,
            parse_labels(IDX_FILES[3], MNIST_TEST_LABELS.to_vec())?,
        )
    }

    /// MNIST's test split alone: a slim build loads it from `$SPARSECAPS_MNIST`.
    #[cfg(not(feature = "embedded-data"))]
    pub fn mnist_test() -> Result<Split, DataError> {
        Ok(Self::load_with(&DataSource::Mnist, (Some(1), None), &|_| {})?.test)
    }

    /// Keeps at most `train` and `test` images (the first ones).
    pub fn limit(&mut self, train: Option<usize>, test: Option<usize>) {
        if let Some(n) = train {
            self.train.truncate(n);
        }
        if let Some(n) = test {
            self.test.truncate(n);
        }
    }
}

fn check_sizes(train: &Split, test: &Split) -> Result<(), DataError> {
    if (train.channels, train.height, train.width) != (test.channels, test.height, test.width) {
        return Err(DataError::SizeMismatch(
            train.channels,
            train.height,
            train.width,
            test.channels,
            test.height,
            test.width,
        ));
    }
    if train.is_empty() {
        return Err(DataError::Empty("train"));
    }
    if test.is_empty() {
        return Err(DataError::Empty("test"));
    }
    Ok(())
}

/// The folder named by the environment variable `var` when it is set (a wrong one is then
/// reported by the reader, not skipped), else the first of `candidates` that `holds` data.
fn dataset_dir(
    var: &str,
    candidates: impl IntoIterator<Item = PathBuf>,
    holds: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => candidates.into_iter().find(|d| holds(d)),
    }
}

/// `$SPARSECAPS_CIFAR10`, else the first of [`CIFAR10_DIRS`] that holds CIFAR-10.
fn cifar10_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = home
        .map(|h| h.join(CIFAR10_DIRS[0]))
        .into_iter()
        .chain([PathBuf::from(CIFAR10_DIRS[1])]);
    dataset_dir(CIFAR10_ENV, candidates, |d| {
        super::folder::is_image_folder(d) || super::cifar_bin::batches_dir(d).is_some()
    })
}

/// `$SPARSECAPS_FASHION_MNIST`, else Debian's folder when it holds the IDX files.
fn fashion_dir() -> Option<PathBuf> {
    dataset_dir(FASHION_ENV, [PathBuf::from(FASHION_DEBIAN_DIR)], |d| {
        find_file(d, IDX_FILES[0]).is_some()
    })
}

fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        // anything by that name: a FIFO or a folder is then refused as not a regular file
        .find(|p| p.exists())
}

fn read_dir_files(dir: &Path) -> Result<[(String, Vec<u8>); 4], DataError> {
    let read = |stem: &'static str| -> Result<(String, Vec<u8>), DataError> {
        let path = find_file(dir, stem).ok_or_else(|| DataError::Missing(dir.join(stem), stem))?;
        let name = path.display().to_string();
        let bytes = crate::fsio::read_capped(&path, crate::fsio::MAX_IDX_FILE_BYTES)?;
        Ok((name, bytes))
    };
    Ok([
        read(IDX_FILES[0])?,
        read(IDX_FILES[1])?,
        read(IDX_FILES[2])?,
        read(IDX_FILES[3])?,
    ])
}

fn make_split(
    split: &'static str,
    images: super::idx::IdxImages,
    labels: Vec<u8>,
) -> Result<Split, DataError> {
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            split,
            images: images.count,
            labels: labels.len(),
        });
    }
    if labels.is_empty() {
        return Err(DataError::Empty(split));
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= MAX_CLASSES)
    {
        return Err(DataError::Label {
            split,
            label,
            index,
            classes: MAX_CLASSES,
        });
    }
    Ok(Split {
        pixels: images.pixels,
        labels,
        height: images.rows,
        width: images.cols,
        channels: images.channels,
    })
}

#[cfg(test)]
mod tests {
    use super::super::idx::tests::{gzip, images_file, labels_file};
    use super::*;

    fn write_dir(dir: &Path, train: (u32, &[u8]), test: (u32, &[u8])) {
        std::fs::write(
            dir.join("train-images-idx3-ubyte.gz"),
            gzip(&images_file(train.0, 4, 4, 9)),
        )
        .unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), labels_file(train.1)).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), images_file(test.0, 4, 4, 1)).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels_file(test.1))).unwrap();
    }

    #[test]
    #[cfg(feature = "embedded-data")]
    fn builtin_mnist_loads_with_the_right_counts() {
        let d = Dataset::load(&DataSource::Mnist).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
        assert_eq!((d.train.height, d.train.width), (28, 28));
        // first test digit of MNIST is a 7
        assert_eq!(d.test.labels[0], 7);
    }

    #[test]
    fn folder_with_mixed_gz_and_raw_files_loads() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), (3, &[0, 1, 2]), (2, &[3, 4]));
        let d = Dataset::load(&DataSource::Dir(dir.path().into())).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.train.height), (3, 2, 4));
        assert!((d.train.image_f32(0)[0] - 9.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn count_mismatch_and_bad_labels_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), (3, &[0, 1]), (2, &[3, 4]));
        let err = Dataset::load(&DataSource::Dir(dir.path().into())).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 3,
                    labels: 2,
                    ..
                }
            ),
            "{err}"
        );
        write_dir(dir.path(), (3, &[0, 1, 2]), (2, &[3, 42]));
        let err = Dataset::load(&DataSource::Dir(dir.path().into())).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Label {
                    label: 42,
                    index: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_folder_is_reported() {
        let err = Dataset::load(&DataSource::Dir("/nonexistent/sparsecaps".into())).unwrap_err();
        assert!(matches!(err, DataError::NoFolder(..)), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = Dataset::load(&DataSource::Dir(empty.path().into())).unwrap_err();
        assert!(matches!(err, DataError::NotADataset(..)), "{err}");
        std::fs::write(empty.path().join("train-images-idx3-ubyte"), b"").unwrap();
        let err = Dataset::load(&DataSource::Dir(empty.path().into())).unwrap_err();
        assert!(matches!(err, DataError::Missing(..)), "{err}");
    }

    #[test]
    fn shuffled_batches_cover_every_index_once_and_depend_on_the_seed() {
        let split = Split {
            pixels: vec![0; 10 * 4],
            labels: vec![0; 10],
            height: 2,
            width: 2,
            channels: 1,
        };
        let a = split.batches(3, Some(1));
        assert_eq!(a.len(), 4);
        let mut all: Vec<usize> = a.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a, split.batches(3, Some(1)));
        assert_ne!(a, split.batches(3, Some(2)));
        assert_eq!(split.batches(4, None)[0], vec![0, 1, 2, 3]);
    }
}
