//! The CIFAR-10 binary release (`cifar-10-binary.tar.gz`, unpacked): `data_batch_1.bin` ...
//! `data_batch_5.bin`, `test_batch.bin` and `batches.meta.txt`, in a folder or in its
//! `cifar-10-batches-bin/` subfolder. Each record is one label byte followed by 1,024 red,
//! 1,024 green and 1,024 blue bytes of a 32x32 image, which is already the channel-first
//! layout the trainer uses.

use std::path::{Path, PathBuf};

use super::dataset::Split;

/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Bytes of one record: a label and 3 x 32 x 32 pixels.
pub const RECORD_BYTES: usize = 1 + 3 * SIDE * SIDE;
/// The training batch files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class names file.
pub const META_FILE: &str = "batches.meta.txt";
/// CIFAR-10's classes, used when `batches.meta.txt` is absent.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Why a CIFAR-10 binary folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CifarBinError {
    /// A batch file is missing.
    #[error(
        "{0}: no such file (the CIFAR-10 binary release has data_batch_1.bin ... data_batch_5.bin and test_batch.bin)"
    )]
    Missing(PathBuf),
    /// A batch file's length is not a whole number of records.
    #[error("{0}: {1} bytes is not a positive multiple of the {RECORD_BYTES}-byte record")]
    Length(PathBuf, usize),
    /// A label is not one of the classes.
    #[error("{path}: record {index} has label {label}, but there are {classes} classes")]
    Label {
        /// The batch file.
        path: PathBuf,
        /// The record.
        index: usize,
        /// Its label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A file cannot be read.
    #[error(transparent)]
    Read(#[from] crate::fsio::ReadError),
}

/// The folder holding the batch files, if `dir` (or its `cifar-10-batches-bin/`) has them.
pub fn batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join(TRAIN_FILES[0]).exists() || d.join(TEST_FILE).exists())
}

/// Reads the class names and the train and test splits from a batch folder, keeping at
/// most the given number of images of each.
pub fn load(
    dir: &Path,
    limits: (Option<usize>, Option<usize>),
) -> Result<(Vec<String>, Split, Split), CifarBinError> {
    let classes = class_names(dir)?;
    let train_paths: Vec<PathBuf> = TRAIN_FILES.iter().map(|f| dir.join(f)).collect();
    let train = read_split(&train_paths, classes.len(), limits.0)?;
    let test = read_split(&[dir.join(TEST_FILE)], classes.len(), limits.1)?;
    Ok((classes, train, test))
}

/// The names in `batches.meta.txt`, or [`CLASSES`] when it is absent or empty.
fn class_names(dir: &Path) -> Result<Vec<String>, CifarBinError> {
    let path = dir.join(META_FILE);
    let names: Vec<String> = if path.exists() {
        let bytes = crate::fsio::read_capped(&path, 1 << 20)?;
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .take(256)
            .collect()
    } else {
        Vec::new()
    };
    Ok(if names.is_empty() {
        CLASSES.iter().map(|c| c.to_string()).collect()
    } else {
        names
    })
}

fn read_split(paths: &[PathBuf], classes: usize, limit: Option<usize>) -> Result<Split, CifarBinError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let limit = limit.unwrap_or(usize::MAX);
    for path in paths {
        if labels.len() >= limit {
            break;
        }
        if !path.exists() {
            return Err(CifarBinError::Missing(path.clone()));
        }
        let bytes = crate::fsio::read_capped(path, crate::fsio::MAX_IDX_FILE_BYTES)?;
        if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
            return Err(CifarBinError::Length(path.clone(), bytes.len()));
        }
        for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if labels.len() >= limit {
                break;
            }
            let label = record[0];
            if label as usize >= classes {
                return Err(CifarBinError::Label {
                    path: path.clone(),
                    index,
                    label,
                    classes,
                });
            }
            labels.push(label);
            pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok(Split {
        pixels,
        labels,
        height: SIDE,
        width: SIDE,
        channels: 3,
    })
}
