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

/// Decompresses `bytes` if they are gzipped (magic 1f 8b), else returns them as they are.
pub fn maybe_gunzip(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|source| IdxError::Io {
                name: name.to_string(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn header(name: &str, bytes: &[u8], magic: u32, ndims: usize) -> Result<Vec<u32>, IdxError> {
    let short = || IdxError::ShortHeader {
        name: name.to_string(),
        len: bytes.len(),
    };
    let word = |i: usize| -> Result<u32, IdxError> {
        let b = bytes.get(i..i + 4).ok_or_else(short)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0)?;
    if found != magic {
        return Err(IdxError::Magic {
            name: name.to_string(),
            found,
            expected: magic,
        });
    }
    (0..ndims).map(|d| word(4 + 4 * d)).collect()
}

fn check_size(name: &str, data: &[u8], expected: usize) -> Result<(), IdxError> {
    if data.len() != expected {
        return Err(IdxError::Size {
            name: name.to_string(),
            expected,
            found: data.len(),
        });
    }
    Ok(())
}

/// Parses an images file (gzipped or raw): grey (`0x803`: count, rows, cols) or colour
/// (`0x804`: count, rows, cols, channels, stored channel-last and returned channel-first).
pub fn parse_images(name: &str, bytes: Vec<u8>) -> Result<IdxImages, IdxError> {
    let bytes = maybe_gunzip(name, bytes)?;
    let color = bytes.get(..4) == Some(&COLOR_IMAGES_MAGIC.to_be_bytes()[..]);
    let (magic, ndims) = if color {
        (COLOR_IMAGES_MAGIC, 4)
    } else {
        (IMAGES_MAGIC, 3)
    };
    let dims = header(name, &bytes, magic, ndims)?;
    let (count, rows, cols) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    let channels = if color { dims[3] as usize } else { 1 };
    if rows == 0 || cols == 0 || rows > 4096 || cols > 4096 || channels == 0 || channels > 4 {
        return Err(IdxError::Dims {
            name: name.to_string(),
            dims,
        });
    }
    let data = &bytes[4 + 4 * ndims..];
    let per_image = rows * cols * channels;
    check_size(name, data, count * per_image)?;
    let pixels = if channels == 1 {
        data.to_vec()
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
    let bytes = maybe_gunzip(name, bytes)?;
    let dims = header(name, &bytes, LABELS_MAGIC, 1)?;
    let data = &bytes[8..];
    check_size(name, data, dims[0] as usize)?;
    Ok(data.to_vec())
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
            IdxError::Size { .. }
        ));
        assert!(matches!(
            parse_images("x", images_file(1, 0, 4, 0)).unwrap_err(),
            IdxError::Dims { .. }
        ));
    }
}
