//! Image-folder datasets in torchvision's `ImageFolder` layout: `DIR/train/CLASS/*` and
//! `DIR/test/CLASS/*`, PNG or JPEG files. The classes are the sorted folder names of
//! `train/`; every image of a dataset must have the same size. Images are decoded once,
//! in parallel, and kept in memory as bytes. If every image is grey the dataset has one
//! channel, otherwise three (grey images are then repeated over red, green and blue).
//!
//! A split lists its images class by class in turn (the first file of every class, then
//! the second of every class, ...), so the first `n` images of a split, which is what
//! `--limit-train` keeps, cover the classes evenly. Only the images kept are decoded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::dataset::{LoadProgress, Split};

/// Most classes an image folder may have (labels are stored as bytes).
pub const MAX_FOLDER_CLASSES: usize = 256;
/// Largest side of a dataset image, in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Most bytes the decoded images of one split may take in memory.
pub const MAX_SPLIT_BYTES: u64 = 8 << 30;
/// File name endings read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Why an image folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// `train/` or `test/` is missing.
    #[error("{0}: no {1}/ folder (an image-folder dataset has train/CLASS/* and test/CLASS/*)")]
    NoSplit(PathBuf, &'static str),
    /// A split folder has no class folders.
    #[error("{0}: no class folders")]
    NoClasses(PathBuf),
    /// Too many classes.
    #[error("{0}: {1} class folders, at most {MAX_FOLDER_CLASSES} are supported")]
    TooManyClasses(PathBuf, usize),
    /// A class folder holds no image.
    #[error("{0}: empty class folder (no .png, .jpg or .jpeg file)")]
    EmptyClass(PathBuf),
    /// A test class has no training folder.
    #[error("{0}: class '{1}' is not among train/'s classes")]
    UnknownClass(PathBuf, String),
    /// A file that is not an image.
    #[error("{0}: not an image (expected .png, .jpg or .jpeg)")]
    NotImage(PathBuf),
    /// A folder or file name that is not UTF-8.
    #[error("{0}: the name is not valid UTF-8")]
    BadName(PathBuf),
    /// An image cannot be decoded.
    #[error("{0}: cannot decode: {1}")]
    Decode(PathBuf, String),
    /// The caller asked to stop before every image was decoded.
    #[error("loading was cancelled")]
    Cancelled,
    /// Images of different sizes.
    #[error("{path}: {found} pixels (width x height) but {first} is {expected}")]
    SizeMismatch {
        /// The odd image.
        path: PathBuf,
        /// Its size.
        found: String,
        /// The first image of the split.
        first: PathBuf,
        /// The first image's size.
        expected: String,
    },
    /// The decoded split would not fit in memory.
    #[error("{0}: {1} images of {2} bytes are more than {MAX_SPLIT_BYTES} bytes")]
    TooLarge(PathBuf, usize, usize),
    /// A folder cannot be listed.
    #[error("{0}: {1}")]
    Io(PathBuf, String),
    /// An image file cannot be read (not a regular file, too large, I/O error).
    #[error(transparent)]
    Read(#[from] crate::fsio::ReadError),
}

/// Whether `dir` looks like an image-folder dataset (it has `train/` or `test/`).
pub fn is_image_folder(dir: &Path) -> bool {
    dir.join("train").is_dir() || dir.join("test").is_dir()
}

/// Reads an image folder: class names, then the train and test splits, each keeping at
/// most its limit of images. Decoding stops with [`FolderError::Cancelled`] once `go_on`
/// returns false.
pub fn load(
    dir: &Path,
    limits: (Option<usize>, Option<usize>),
    progress: &(dyn Fn(LoadProgress) + Sync),
    go_on: &(dyn Fn() -> bool + Sync),
) -> Result<(Vec<String>, Split, Split), FolderError> {
    let train_dir = split_dir(dir, "train")?;
    let test_dir = split_dir(dir, "test")?;
    let classes = class_folders(&train_dir)?;
    let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    let test_classes = class_folders(&test_dir)?;
    for (name, _) in &test_classes {
        if !names.contains(name) {
            return Err(FolderError::UnknownClass(test_dir.join(name), name.clone()));
        }
    }
    let train_files = interleave(&classes, &names, limits.0)?;
    let test_files = interleave(&test_classes, &names, limits.1)?;
    let total = train_files.len() + test_files.len();
    let report = |done: usize| progress(LoadProgress { done, total });
    let train = decode_split(&train_files, &|d| report(d), go_on)?;
    let test = decode_split(&test_files, &|d| report(train_files.len() + d), go_on)?;
    let (mut train, mut test) = (train, test);
    if train.grey != test.grey {
        // one split has colour: both get three channels
        train.make_rgb();
        test.make_rgb();
    }
    Ok((names, train.into_split(), test.into_split()))
}

fn split_dir(dir: &Path, name: &'static str) -> Result<PathBuf, FolderError> {
    let d = dir.join(name);
    if d.is_dir() {
        Ok(d)
    } else {
        Err(FolderError::NoSplit(dir.to_path_buf(), name))
    }
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, FolderError> {
    let io = |e: std::io::Error| FolderError::Io(dir.to_path_buf(), e.to_string());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| FolderError::BadName(path.clone()))?
            .to_string();
        if !name.starts_with('.') {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The class folders of a split (sorted by name), each with its sorted image files.
type Classes = Vec<(String, Vec<PathBuf>)>;

fn class_folders(split: &Path) -> Result<Classes, FolderError> {
    let mut classes = Vec::new();
    for (name, path) in list(split)? {
        if !path.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for (file, p) in list(&path)? {
            let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            match ext {
                Some(e) if IMAGE_EXTENSIONS.contains(&e.as_str()) => files.push(p),
                _ => return Err(FolderError::NotImage(p)),
            }
        }
        if files.is_empty() {
            return Err(FolderError::EmptyClass(path));
        }
        classes.push((name, files));
    }
    if classes.is_empty() {
        return Err(FolderError::NoClasses(split.to_path_buf()));
    }
    if classes.len() > MAX_FOLDER_CLASSES {
        return Err(FolderError::TooManyClasses(split.to_path_buf(), classes.len()));
    }
    Ok(classes)
}

/// The files of a split with their labels, class by class in turn, at most `limit`.
fn interleave(
    classes: &Classes,
    names: &[String],
    limit: Option<usize>,
) -> Result<Vec<(PathBuf, u8)>, FolderError> {
    let total: usize = classes.iter().map(|(_, f)| f.len()).sum();
    let keep = limit.unwrap_or(total).min(total);
    let longest = classes.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(keep);
    for k in 0..longest {
        for (name, files) in classes {
            if out.len() == keep {
                return Ok(out);
            }
            if let Some(p) = files.get(k) {
                let label = names.iter().position(|n| n == name).unwrap_or(0);
                // classes.len() <= MAX_FOLDER_CLASSES = 256, so the label fits a byte
                out.push((p.clone(), u8::try_from(label).unwrap_or(u8::MAX)));
            }
        }
    }
    Ok(out)
}

/// One image as RGB bytes (height x width x 3) and whether it was grey.
struct Decoded {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    grey: bool,
}

fn decode_file(path: &Path) -> Result<Decoded, FolderError> {
    let bytes = crate::fsio::read_capped(path, crate::fsio::MAX_IMAGE_FILE_BYTES)?;
    let img =
        crate::fsio::decode_image(bytes, MAX_SIDE).map_err(|e| FolderError::Decode(path.to_path_buf(), e))?;
    let grey = !img.color().has_color();
    let rgb = img.to_rgb8();
    Ok(Decoded {
        width: rgb.width(),
        height: rgb.height(),
        rgb: rgb.into_raw(),
        grey,
    })
}

/// A split being assembled: RGB pixels channel-first per image, and whether all were grey.
struct Assembled {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
    channels: usize,
    grey: bool,
}

impl Assembled {
    fn make_rgb(&mut self) {
        if self.channels == 1 {
            let plane = self.height * self.width;
            let mut rgb = Vec::with_capacity(self.pixels.len() * 3);
            for img in self.pixels.chunks(plane) {
                for _ in 0..3 {
                    rgb.extend_from_slice(img);
                }
            }
            self.pixels = rgb;
            self.channels = 3;
        }
        self.grey = false;
    }

    fn into_split(self) -> Split {
        Split {
            pixels: self.pixels,
            labels: self.labels,
            height: self.height,
            width: self.width,
            channels: self.channels,
        }
    }
}

/// Decodes the files of a split on all cores and checks that the sizes agree.
fn decode_split(
    files: &[(PathBuf, u8)],
    progress: &(dyn Fn(usize) + Sync),
    go_on: &(dyn Fn() -> bool + Sync),
) -> Result<Assembled, FolderError> {
    let Some((first_path, _)) = files.first() else {
        return Err(FolderError::NoClasses(PathBuf::new()));
    };
    let first = decode_file(first_path)?;
    let image_bytes = first.rgb.len();
    if (files.len() as u64).saturating_mul(image_bytes as u64) > MAX_SPLIT_BYTES {
        return Err(FolderError::TooLarge(
            first_path.clone(),
            files.len(),
            image_bytes,
        ));
    }
    let decoded = decode_parallel(files, progress, go_on)?;
    let mut grey = true;
    for (d, (path, _)) in decoded.iter().zip(files) {
        if (d.width, d.height) != (first.width, first.height) {
            return Err(FolderError::SizeMismatch {
                path: path.clone(),
                found: format!("{}x{}", d.width, d.height),
                first: first_path.clone(),
                expected: format!("{}x{}", first.width, first.height),
            });
        }
        grey &= d.grey;
    }
    let (h, w) = (first.height as usize, first.width as usize);
    let channels = if grey { 1 } else { 3 };
    let mut pixels = Vec::with_capacity(files.len() * channels * h * w);
    for d in &decoded {
        for c in 0..channels {
            pixels.extend(d.rgb.iter().skip(c).step_by(3));
        }
    }
    Ok(Assembled {
        pixels,
        labels: files.iter().map(|(_, l)| *l).collect(),
        height: h,
        width: w,
        channels,
        grey,
    })
}

/// Decodes every file, in order, on as many threads as there are cores. The first error
/// in file order wins, so the message does not depend on thread timing; `go_on` is asked
/// before each file, and a false answer stops all threads with [`FolderError::Cancelled`].
fn decode_parallel(
    files: &[(PathBuf, u8)],
    progress: &(dyn Fn(usize) + Sync),
    go_on: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Decoded>, FolderError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let cancelled = AtomicBool::new(false);
    let work = || {
        let mut out = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            if !go_on() {
                cancelled.store(true, Ordering::Relaxed);
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((path, _)) = files.get(i) else { break };
            let result = decode_file(path);
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            out.push((i, result));
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d.is_multiple_of(500) || d == files.len() {
                progress(d);
            }
        }
        out
    };
    let mut results: Vec<(usize, Result<Decoded, FolderError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // a cancel wins over an error another thread met at the same time
    if cancelled.load(Ordering::Relaxed) || !go_on() {
        return Err(FolderError::Cancelled);
    }
    results.sort_by_key(|(i, _)| *i);
    if results.len() < files.len() && results.iter().all(|(_, r)| r.is_ok()) {
        return Err(FolderError::Io(
            PathBuf::new(),
            "an image decoder thread stopped".into(),
        ));
    }
    results.into_iter().map(|(_, r)| r).collect()
}
