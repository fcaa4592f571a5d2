//! Reading and writing safetensors files of host tensors, with atomic writes.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::model::HostTensor;

/// Why a tensor file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file cannot be read (not a regular file, too large, I/O error).
    #[error(transparent)]
    Read(#[from] crate::fsio::ReadError),
    /// Not a valid safetensors file.
    #[error("{path}: not a valid safetensors file ({reason})")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is outside half precision's range (|v| >= 65520), so it cannot be stored as
    /// f16.
    #[error("tensor '{name}' holds {value}, outside the range of 16-bit floats: export without --f16")]
    HalfRange {
        /// Tensor name.
        name: String,
        /// The value.
        value: f32,
    },
    /// A tensor has an element type this program does not read.
    #[error("{path}: tensor '{name}' has unsupported type {dtype:?}")]
    Dtype {
        /// The file.
        path: String,
        /// Tensor name.
        name: String,
        /// Its type.
        dtype: Dtype,
    },
}

/// The tensors (converted to f32) and the metadata of a safetensors file.
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: HashMap<String, HostTensor>,
    /// The `__metadata__` string map.
    pub metadata: HashMap<String, String>,
    /// Raw bytes of the u8 tensors (sparse masks; 1-D when written, any shape when read).
    pub bytes: HashMap<String, Vec<u8>>,
    /// Store float tensors of at least [`HALF_MIN_LEN`] values as 16-bit floats when written
    /// (read back as f32); smaller ones (biases, BatchNorm statistics) stay f32.
    pub half: bool,
}

/// Fewest values of a tensor that [`TensorFile::half`] stores as f16.
pub const HALF_MIN_LEN: usize = 1024;

/// The IEEE half-precision bits nearest to `v` (ties to even; values of at most half the
/// smallest subnormal, 2^-25, become a signed zero), or `None` when `v` is not finite or
/// rounds beyond the largest half (65504).
pub fn f32_to_f16(v: f32) -> Option<u16> {
    if !v.is_finite() || v.abs() >= 65520.0 {
        return None;
    }
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    if exp < -14 {
        // a half subnormal (or zero): a count of 2^-24 units, exact in f32 before rounding
        let units = (v.abs() * 16_777_216.0).round_ties_even() as u16;
        return Some(sign | units);
    }
    let mantissa = bits & 0x7f_ffff;
    let mut half = (((exp + 15) as u32) << 10) | (mantissa >> 13);
    let rest = mantissa & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) {
        // a carry out of the mantissa moves into the exponent, which is the right result
        half += 1;
    }
    Some(sign | half as u16)
}

/// Converts IEEE half-precision bits to f32.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f32::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * (-24f32).exp2(),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * ((exp - 15) as f32).exp2(),
    }
}

/// Converts a float or integer tensor to f32 (at most twice its size in memory); other
/// element types are refused (u8 tensors are kept as raw bytes by the caller instead).
fn convert(path: &str, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, TensorFileError> {
    let data = view.data();
    let chunks = |n: usize| data.chunks_exact(n);
    Ok(match view.dtype() {
        Dtype::F32 => chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => chunks(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::I64 => chunks(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::I32 => chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        Dtype::F16 => chunks(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        dtype => {
            return Err(TensorFileError::Dtype {
                path: path.to_string(),
                name: name.to_string(),
                dtype,
            });
        }
    })
}

impl TensorFile {
    /// Parses safetensors bytes; `path` only names the source in errors.
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<Self, TensorFileError> {
        let format = |e: safetensors::SafeTensorError| TensorFileError::Format {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(format)?;
        let st = SafeTensors::deserialize(bytes).map_err(format)?;
        let mut tensors = HashMap::new();
        let mut raw = HashMap::new();
        for (name, view) in st.iter() {
            if view.dtype() == Dtype::U8 {
                // bit masks of sparse tensors; never widened to f32 (4x the memory)
                raw.insert(name.to_string(), view.data().to_vec());
                continue;
            }
            let values = convert(path, name, &view)?;
            tensors.insert(
                name.to_string(),
                HostTensor {
                    shape: view.shape().to_vec(),
                    values,
                },
            );
        }
        Ok(Self {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
            bytes: raw,
            half: false,
        })
    }

    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self, TensorFileError> {
        let p = path.display().to_string();
        let bytes = crate::fsio::read_capped(path, crate::fsio::MAX_MODEL_FILE_BYTES)?;
        Self::from_bytes(&p, &bytes)
    }

    /// Serialises to safetensors bytes (f32 tensors, or f16 ones where [`Self::half`] says
    /// so; sorted by name).
    pub fn to_bytes(&self) -> Result<Vec<u8>, TensorFileError> {
        let mut raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(self.tensors.len());
        for (n, t) in &self.tensors {
            let (dtype, bytes) = if self.half && t.values.len() >= HALF_MIN_LEN {
                (Dtype::F16, half_bytes(n, &t.values)?)
            } else {
                (
                    Dtype::F32,
                    t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            };
            raw.push((n.clone(), dtype, t.shape.clone(), bytes));
        }
        let format = |e: safetensors::SafeTensorError| TensorFileError::Format {
            path: "<memory>".into(),
            reason: e.to_string(),
        };
        let mut views = Vec::with_capacity(raw.len());
        for (n, dtype, shape, bytes) in &raw {
            views.push((
                n.clone(),
                TensorView::new(*dtype, shape.clone(), bytes).map_err(format)?,
            ));
        }
        for (n, bytes) in &self.bytes {
            views.push((
                n.clone(),
                TensorView::new(Dtype::U8, vec![bytes.len()], bytes).map_err(format)?,
            ));
        }
        let meta = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        safetensors::serialize(views, meta).map_err(format)
    }

    /// Writes the file atomically (temporary file in the same folder, then rename).
    pub fn write(&self, path: &Path) -> Result<(), TensorFileError> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }
}

/// The little-endian f16 bytes of the values of tensor `name`.
fn half_bytes(name: &str, values: &[f32]) -> Result<Vec<u8>, TensorFileError> {
    let mut bytes = Vec::with_capacity(values.len() * 2);
    for &v in values {
        let h = f32_to_f16(v).ok_or_else(|| TensorFileError::HalfRange {
            name: name.to_string(),
            value: v,
        })?;
        bytes.extend_from_slice(&h.to_le_bytes());
    }
    Ok(bytes)
}

/// Writes `value` as JSON (`pretty`: indented) to `path` with [`write_atomic`]. A value
/// serde cannot write (a path that is not UTF-8) is an error naming the file, never an
/// empty file in place of the last good one.
pub fn write_json_atomic(
    path: &Path,
    value: &impl serde::Serialize,
    pretty: bool,
) -> Result<(), TensorFileError> {
    let json = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let json = json.map_err(|e| TensorFileError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, json.as_bytes())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TensorFileError> {
    let io = |source| TensorFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // unique per process and per call, so two writers never share a temporary file
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // make the rename itself durable (best effort: not every file system allows it)
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_tensors_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut f = TensorFile::default();
        f.tensors.insert(
            "a".into(),
            HostTensor {
                shape: vec![2, 2],
                values: vec![1.0, -2.0, 3.5, 0.0],
            },
        );
        f.metadata.insert("k".into(), "v".into());
        f.write(&path).unwrap();
        let back = TensorFile::read(&path).unwrap();
        assert_eq!(back.tensors["a"], f.tensors["a"]);
        assert_eq!(back.metadata["k"], "v");
        // no temporary file is left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn half_conversion_rounds_to_nearest_and_refuses_overflow() {
        // exact values come back exactly, subnormals included
        for v in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            0.333_251_95,
            65504.0,
            2f32.powi(-24),
            -2f32.powi(-20),
        ] {
            let h = f32_to_f16(v).unwrap();
            assert_eq!(f16_to_f32(h).to_bits(), v.to_bits(), "{v}");
        }
        // ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), Some(0x3c00));
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), Some(0x3c02));
        // the mantissa's carry moves into the exponent
        assert_eq!(f32_to_f16(2.0 - 2f32.powi(-12)), Some(0x4000));
        // below half the smallest subnormal: zero
        assert_eq!(f32_to_f16(2f32.powi(-26)), Some(0));
        // normal values stay within half a unit in the last place (2^-11 relative)
        for i in 0..2000 {
            let v = (i as f32 * 0.731).sin() * 3.0f32.powi(i % 7 - 3);
            let back = f16_to_f32(f32_to_f16(v).unwrap());
            assert!(
                (back - v).abs() <= v.abs() * 2f32.powi(-11) + 2f32.powi(-25),
                "{v} {back}"
            );
        }
        for bad in [65520.0f32, -1e6, f32::NAN, f32::INFINITY] {
            assert_eq!(f32_to_f16(bad), None, "{bad}");
        }
        assert_eq!(f32_to_f16(65519.996), Some(0x7bff));
    }

    #[test]
    fn every_half_comes_back_and_midpoints_go_to_the_even_neighbour() {
        // all finite positive halves (0x0000..0x7bff) and their negatives
        for h in 0u16..0x7c00 {
            for bits in [h, h | 0x8000] {
                assert_eq!(f32_to_f16(f16_to_f32(bits)), Some(bits), "{bits:#06x}");
            }
            if h < 0x7bff {
                // halfway between h and h + 1 (exact in f32): the even one of the two wins,
                // which also covers the carry from the largest subnormal into the normals
                let mid = (f16_to_f32(h) + f16_to_f32(h + 1)) / 2.0;
                let even = if h % 2 == 0 { h } else { h + 1 };
                assert_eq!(f32_to_f16(mid), Some(even), "{h:#06x}");
            }
        }
    }

    #[test]
    fn half_storage_halves_large_tensors_only() {
        let mut f = TensorFile::default();
        let big: Vec<f32> = (0..HALF_MIN_LEN).map(|i| i as f32 / 7.0).collect();
        let t = |values: Vec<f32>| HostTensor {
            shape: vec![values.len()],
            values,
        };
        f.tensors.insert("big".into(), t(big.clone()));
        f.tensors.insert("small".into(), t(vec![0.1, 1e-7]));
        let full = f.to_bytes().unwrap().len();
        f.half = true;
        let bytes = f.to_bytes().unwrap();
        // the data shrink by 2 bytes a value; the JSON header's offsets may change length
        let saved = full - bytes.len();
        assert!(saved.abs_diff(HALF_MIN_LEN * 2) <= 16, "{saved}");
        let back = TensorFile::from_bytes("x", &bytes).unwrap();
        assert_eq!(back.tensors["small"], f.tensors["small"]);
        for (a, b) in back.tensors["big"].values.iter().zip(&big) {
            assert!((a - b).abs() <= b.abs() * 2f32.powi(-11));
        }
        f.tensors.insert("big".into(), t(vec![1e5; HALF_MIN_LEN]));
        assert!(matches!(f.to_bytes(), Err(TensorFileError::HalfRange { .. })));
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        assert!(matches!(
            TensorFile::from_bytes("x", b"hello world"),
            Err(TensorFileError::Format { .. })
        ));
        let mut f = TensorFile::default();
        f.tensors.insert(
            "a".into(),
            HostTensor {
                shape: vec![3],
                values: vec![1.0; 3],
            },
        );
        let bytes = f.to_bytes().unwrap();
        let cut = &bytes[..bytes.len() - 2];
        assert!(matches!(
            TensorFile::from_bytes("x", cut),
            Err(TensorFileError::Format { .. })
        ));
    }
}
