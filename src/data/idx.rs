//! Reader for IDX files (MNIST's format), gzipped or raw.

use std::io::Read;

/// Why an IDX file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be read or decompressed.
    #[error("{name}: cannot read: {source}")]
    Io {
        /// File name.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The header is shorter than it must be.
    #[error("{name}: truncated header ({len} bytes)")]
    ShortHeader {
        /// File name.
        name: String,
        /// Bytes present.
        len: usize,
    },
    /// The magic number is not the one expected.
    #[error("{name}: wrong magic number 0x{found:08x} (expected 0x{expected:08x})")]
    Magic {
        /// File name.
        name: String,
        /// Magic found.
        found: u32,
        /// Magic expected.
        expected: u32,
    },
    /// The data is shorter or longer than the header says.
    #[error("{name}: header promises {expected} data bytes, file has {found}")]
    Size {
        /// File name.
        name: String,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The data goes on past the size the header declares (reading stopped there).
    #[error("{name}: holds more data than the {expected} bytes its header promises")]
    TooLong {
        /// File name.
        name: String,
        /// Bytes expected.
        expected: usize,
    },
    /// A dimension is zero or absurd.
    #[error("{name}: bad dimensions {dims:?}")]
    Dims {
        /// File name.
        name: String,
        /// Dimensions.
        dims: Vec<u32>,
    },
}

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with four dimensions (colour images,
/// count x rows x cols x channels).
pub const COLOR_IMAGES_MAGIC: u32 = 0x0000_0804;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images from an IDX file.
#[derive(Debug, Clone)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// Channels per pixel (1 for grey images).
    pub channels: usize,
    /// `count * channels * rows * cols` pixels, channel-first per image, 0..=255.
    pub pixels: Vec<u8>,
}

/// Most bytes of pixel or label data an IDX file may declare (decompressed).
pub const MAX_IDX_DATA_BYTES: usize = 1 << 30;
/// Largest image side an IDX file may declare.
pub const MAX_IDX_SIDE: usize = 1024;

/// Whether `bytes` start with the gzip magic (1f 8b).
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The header and payload of an IDX file, read from a possibly gzipped stream without
/// trusting it: the payload size is computed from the header (checked against
/// [`MAX_IDX_DATA_BYTES`] before anything is allocated) and the stream must hold exactly
/// that many bytes, so a decompression bomb is refused after `declared + 1` bytes.
struct Decoded {
    magic: u32,
    dims: Vec<u32>,
    data: Vec<u8>,
}

/// Reads an IDX stream. `ndims_of` maps an accepted magic number to its dimension count
/// (`None`: wrong magic, reported as `expected`). `check_dims` vets the dimensions before
/// the payload is read.
fn decode(
    name: &str,
    bytes: &[u8],
    expected: u32,
    ndims_of: impl Fn(u32) -> Option<usize>,
    check_dims: impl Fn(&[u32]) -> bool,
) -> Result<Decoded, IdxError> {
    let mut reader: Box<dyn Read + '_> = if is_gzip(bytes) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let io = |source| IdxError::Io {
        name: name.to_string(),
        source,
    };
    // read the header word by word; a short stream is a short header
    let mut header = Vec::with_capacity(20);
    let mut word = |header: &mut Vec<u8>| -> Result<Option<u32>, IdxError> {
        let mut w = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match reader.read(&mut w[got..]) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        header.extend_from_slice(&w);
        Ok(Some(u32::from_be_bytes(w)))
    };
    let short = |len: usize| IdxError::ShortHeader {
        name: name.to_string(),
        len,
    };
    let magic = word(&mut header)?.ok_or_else(|| short(header.len()))?;
    let ndims = ndims_of(magic).ok_or(IdxError::Magic {
        name: name.to_string(),
        found: magic,
        expected,
    })?;
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        dims.push(word(&mut header)?.ok_or_else(|| short(header.len()))?);
    }
    let bad_dims = || IdxError::Dims {
        name: name.to_string(),
        dims: dims.clone(),
    };
    if !check_dims(&dims) {
        return Err(bad_dims());
    }
    let declared = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&n| n <= MAX_IDX_DATA_BYTES)
        .ok_or_else(bad_dims)?;
    let mut data = Vec::with_capacity(declared.min(bytes.len().saturating_mul(8).max(1 << 16)));
    reader
        .take(declared as u64 + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() > declared {
        return Err(IdxError::TooLong {
            name: name.to_string(),
            expected: declared,
        });
    }
    if data.len() != declared {
        return Err(IdxError::Size {
            name: name.to_string(),
            expected: declared,
            found: data.len(),
        });
    }
    Ok(Decoded { magic, dims, data })
}

/// Parses an images file (gzipped or raw): grey (`0x803`: count, rows, cols) or colour
/// (`0x804`: count, rows, cols, channels, stored channel-last and returned channel-first).
/// Sides above [`MAX_IDX_SIDE`], more than 4 channels or more than
/// [`MAX_IDX_DATA_BYTES`] of pixels are refused before the pixels are read.
pub fn parse_images(name: &str, bytes: Vec<u8>) -> Result<IdxImages, IdxError> {
    let ndims_of = |m| match m {
        IMAGES_MAGIC => Some(3),
        COLOR_IMAGES_MAGIC => Some(4),
        _ => None,
    };
    let sane = |dims: &[u32]| {
        let side = |d: u32| (1..=MAX_IDX_SIDE).contains(&(d as usize));
        side(dims[1]) && side(dims[2]) && dims.get(3).is_none_or(|&c| (1..=4).contains(&c))
    };
    let Decoded { magic, dims, data } = decode(name, &bytes, IMAGES_MAGIC, ndims_of, sane)?;
    let (count, rows, cols) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    let channels = if magic == COLOR_IMAGES_MAGIC {
        dims[3] as usize
    } else {
        1
    };
    let per_image = rows * cols * channels;
    let pixels = if channels == 1 {
        data
    } else {
        let mut out = vec![0u8; data.len()];
        for (i, img) in data.chunks_exact(per_image).enumerate() {
            for (p, px) in img.chunks_exact(channels).enumerate() {
                for (c, v) in px.iter().enumerate() {
                    out[i * per_image + c * rows * cols + p] = *v;
                }
            }
        }
        out
    };
    Ok(IdxImages {
        count,
        rows,
        cols,
        channels,
        pixels,
    })
}

/// Parses a labels file (gzipped or raw).
pub fn parse_labels(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    let ndims_of = |m| (m == LABELS_MAGIC).then_some(1);
    Ok(decode(name, &bytes, LABELS_MAGIC, ndims_of, |_| true)?.data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a raw IDX images file.
    pub(crate) fn images_file(count: u32, rows: u32, cols: u32, fill: u8) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(fill, (count * rows * cols) as usize));
        v
    }

    /// Builds a raw IDX labels file.
    pub(crate) fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [LABELS_MAGIC, labels.len() as u32] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(labels);
        v
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_raw_and_gzipped_images() {
        let raw = images_file(3, 2, 4, 7);
        for bytes in [raw.clone(), gzip(&raw)] {
            let img = parse_images("x", bytes).unwrap();
            assert_eq!((img.count, img.rows, img.cols), (3, 2, 4));
            assert_eq!(img.pixels, vec![7; 24]);
        }
        assert_eq!(
            parse_labels("y", gzip(&labels_file(&[1, 2, 3]))).unwrap(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn reads_colour_images_channel_first() {
        let mut v = Vec::new();
        for w in [COLOR_IMAGES_MAGIC, 1, 1, 2, 3] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        // two pixels of (r, g, b)
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let img = parse_images("c", v).unwrap();
        assert_eq!((img.channels, img.rows, img.cols), (3, 1, 2));
        assert_eq!(img.pixels, vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn rejects_wrong_magic() {
        let err = parse_images("x", labels_file(&[1, 2])).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::Magic {
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("wrong magic"));
    }

    #[test]
    fn rejects_truncated_files() {
        let mut raw = images_file(3, 2, 4, 7);
        raw.truncate(raw.len() - 1);
        assert!(matches!(
            parse_images("x", raw).unwrap_err(),
            IdxError::Size {
                expected: 24,
                found: 23,
                ..
            }
        ));
        assert!(matches!(
            parse_labels("y", vec![0, 0, 8]).unwrap_err(),
            IdxError::ShortHeader { .. }
        ));
        let gz = gzip(&images_file(3, 2, 4, 7));
        let cut = gz[..gz.len() / 2].to_vec();
        assert!(matches!(parse_images("x", cut).unwrap_err(), IdxError::Io { .. }));
    }

    #[test]
    fn rejects_trailing_bytes_and_zero_dims() {
        let mut raw = labels_file(&[1, 2]);
        raw.push(0);
        assert!(matches!(
            parse_labels("y", raw).unwrap_err(),
            IdxError::TooLong { expected: 2, .. }
        ));
        assert!(matches!(
            parse_images("x", images_file(1, 0, 4, 0)).unwrap_err(),
            IdxError::Dims { .. }
        ));
    }

    #[test]
    fn a_gzip_bomb_is_refused_after_the_declared_size() {
        // the header promises 2 images of 2x2; the stream goes on for 64 MiB
        let mut raw = images_file(2, 2, 2, 1);
        raw.resize(64 << 20, 0);
        let gz = gzip(&raw);
        assert!(gz.len() < 1 << 20, "compresses well");
        let err = parse_images("bomb", gz).unwrap_err();
        assert!(matches!(err, IdxError::TooLong { expected: 8, .. }), "{err}");
    }

    #[test]
    fn huge_or_overflowing_dimensions_are_refused_before_reading() {
        // sides over the cap
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, 1, 4096, 4096] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        assert!(matches!(parse_images("x", v).unwrap_err(), IdxError::Dims { .. }));
        // a count whose product with the sides is terabytes
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, u32::MAX, 1024, 1024] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        assert!(matches!(parse_images("x", v).unwrap_err(), IdxError::Dims { .. }));
        // labels declaring 4 billion entries with none present
        let mut v = Vec::new();
        for w in [LABELS_MAGIC, u32::MAX] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        assert!(matches!(
            parse_labels("y", v).unwrap_err(),
            IdxError::Dims { .. } | IdxError::Size { found: 0, .. }
        ));
    }
}
