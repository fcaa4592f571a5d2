//! Bounded reading of untrusted files: regular files only, with a size cap checked before
//! any byte is read, so a FIFO, a device file or a huge file is refused instead of
//! blocking or filling memory.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest model file read (a dense `paper` model is ~33 MB).
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;
/// Largest IDX file read, compressed or not (MNIST's training images are 47 MB raw).
pub const MAX_IDX_FILE_BYTES: u64 = 1 << 30;
/// Largest image file read for inspection.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path names a directory, FIFO, socket or device rather than a regular file.
    #[error("{path}: not a regular file ({kind})")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than this kind of file may be.
    #[error("{path}: {size} bytes is more than the {limit} bytes allowed for this kind of file")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Checks that `path` is a regular file of at most `limit` bytes (following symlinks),
/// without opening it, so a FIFO is never opened (opening one blocks).
pub fn check_regular(path: &Path, limit: u64) -> Result<u64, ReadError> {
    let p = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ReadError::Io { path: p(), source })?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: p(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            path: p(),
            size: meta.len(),
            limit,
        });
    }
    Ok(meta.len())
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let p = || path.display().to_string();
    let size = check_regular(path, limit)?;
    let io = |source| ReadError::Io { path: p(), source };
    let file = File::open(path).map_err(io)?;
    // the path may have been swapped between the check and the open
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: p(),
            kind: kind_of(meta.file_type()),
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: p(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// An output path that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write here: {reason}")]
pub struct OutputError {
    /// The path.
    pub path: String,
    /// Why not.
    pub reason: String,
}

/// Checks, before long work starts, that a file can be created at `path`: its folder
/// exists and is a folder, and `path` itself is not a folder.
pub fn check_output_file(path: &Path) -> Result<(), OutputError> {
    let err = |reason: &str| OutputError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    if path.is_dir() {
        return Err(err("it is a folder"));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(err("its parent is not a folder")),
        Err(e) => return Err(err(&format!("its folder {}: {e}", dir.display()))),
    }
    if std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly()) {
        return Err(err("its folder is read-only"));
    }
    Ok(())
}

/// Creates the output folder `dir` (and its parents) before long work starts and checks
/// that each of `files` can be written in it and each of `folders` is a folder if it
/// exists, so a bad `--out` is refused before the work rather than after it.
pub fn prepare_output_dir(
    dir: &Path,
    files: &[impl AsRef<Path>],
    folders: &[&str],
) -> Result<(), OutputError> {
    let err = |path: &Path, reason: String| OutputError {
        path: path.display().to_string(),
        reason,
    };
    let not_a_file = |path: &Path| match path.exists() && !path.is_dir() {
        true => Err(err(path, "it is a file, not a folder".into())),
        false => Ok(()),
    };
    not_a_file(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create the folder: {e}")))?;
    for f in files {
        check_output_file(&dir.join(f))?;
    }
    for f in folders {
        not_a_file(&dir.join(f))?;
    }
    Ok(())
}

/// Most memory the image decoder may allocate for one image (bytes).
pub const MAX_IMAGE_ALLOC_BYTES: u64 = 256 << 20;

/// Decodes an untrusted PNG or JPEG (the format guessed from its bytes) at most `max_side`
/// pixels a side and [`MAX_IMAGE_ALLOC_BYTES`] of decoder memory; an image without pixels
/// is refused too. The error is the decoder's reason.
pub fn decode_image(bytes: Vec<u8>, max_side: u32) -> Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_capped(&f, 5).unwrap(), b"hello");
        assert!(matches!(
            read_capped(&f, 4),
            Err(ReadError::TooLarge {
                size: 5,
                limit: 4,
                ..
            })
        ));
        assert!(matches!(
            read_capped(dir.path(), 10),
            Err(ReadError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular { kind: "a device", .. })
        ));
        assert!(matches!(
            read_capped(&dir.path().join("missing"), 10),
            Err(ReadError::Io { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let err = read_capped(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
