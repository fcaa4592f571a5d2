//! Sparse storage of mostly-zero tensors in a model file: `NAME.mask` holds one bit per
//! element (u8, little-endian bit order) and `NAME.values` the non-zero values in order;
//! the dense shape is kept in the `sparse` metadata entry.

use std::collections::BTreeMap;

use super::tensors::TensorFile;
use crate::model::HostTensor;

/// Metadata key listing the sparse tensors and their shapes.
pub const SPARSE_KEY: &str = "sparse";

/// Tensors denser than this are stored dense.
pub const MAX_DENSITY: f64 = 0.5;

/// A sparse record is inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("sparse tensor '{name}': {reason}")]
pub struct SparseError {
    /// Tensor name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// Stores each of `names` sparsely if at most [`MAX_DENSITY`] of it is non-zero.
pub fn sparsify(file: &mut TensorFile, names: &[&str]) {
    let mut shapes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &name in names {
        let Some(t) = file.tensors.get(name) else { continue };
        let nnz = t.values.iter().filter(|v| **v != 0.0).count();
        if nnz as f64 > MAX_DENSITY * t.values.len() as f64 {
            continue;
        }
        let mut mask = vec![0u8; t.values.len().div_ceil(8)];
        let mut values = Vec::with_capacity(nnz);
        for (i, v) in t.values.iter().enumerate() {
            if *v != 0.0 {
                mask[i / 8] |= 1 << (i % 8);
                values.push(*v);
            }
        }
        shapes.insert(name.to_string(), t.shape.clone());
        file.tensors.remove(name);
        file.bytes.insert(format!("{name}.mask"), mask);
        file.tensors.insert(
            format!("{name}.values"),
            HostTensor {
                shape: vec![values.len()],
                values,
            },
        );
    }
    if !shapes.is_empty() {
        file.metadata.insert(
            SPARSE_KEY.into(),
            serde_json::to_string(&shapes).unwrap_or_default(),
        );
    }
}

/// Turns the sparse tensors of a file back into dense ones.
pub fn densify(file: &mut TensorFile) -> Result<(), SparseError> {
    let Some(spec) = file.metadata.get(SPARSE_KEY) else {
        return Ok(());
    };
    let shapes: BTreeMap<String, Vec<usize>> = serde_json::from_str(spec).map_err(|e| SparseError {
        name: "*".into(),
        reason: format!("bad shape list: {e}"),
    })?;
    // each tensor's size, and their sum, before anything is allocated: a model holds at most
    // MAX_PARAMS values in all, and a crafted list of huge tensors would otherwise allocate
    // many GiB before the model's own checks run
    let limit = crate::model::validate::MAX_PARAMS;
    let mut sizes = Vec::with_capacity(shapes.len());
    for (name, shape) in &shapes {
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= limit)
            .ok_or_else(|| SparseError {
                name: name.clone(),
                reason: "declared shape is larger than any model's tensor".into(),
            })?;
        sizes.push(n);
    }
    if sizes.iter().fold(0usize, |sum, &n| sum.saturating_add(n)) > limit {
        return Err(SparseError {
            name: "*".into(),
            reason: "the sparse tensors declare more values than any model holds".into(),
        });
    }
    for ((name, shape), n) in shapes.into_iter().zip(sizes) {
        let err = |reason: &str| SparseError {
            name: name.clone(),
            reason: reason.to_string(),
        };
        let mask = file
            .bytes
            .remove(&format!("{name}.mask"))
            .ok_or_else(|| err("mask missing"))?;
        let values = file
            .tensors
            .remove(&format!("{name}.values"))
            .ok_or_else(|| err("values missing"))?;
        if mask.len() != n.div_ceil(8) {
            return Err(err("mask size does not match the shape"));
        }
        let set = |i: usize| mask[i / 8] & (1 << (i % 8)) != 0;
        // the bits past the last element must be clear
        let set_bits: usize = mask.iter().map(|b| b.count_ones() as usize).sum();
        if (0..n).filter(|&i| set(i)).count() != set_bits {
            return Err(err("mask has bits set past the end of the tensor"));
        }
        if set_bits != values.values.len() {
            return Err(err("mask and values disagree"));
        }
        let mut dense = vec![0.0; n];
        let mut next = values.values.iter();
        for (i, d) in dense.iter_mut().enumerate() {
            if set(i) {
                *d = next.next().copied().unwrap_or(0.0);
            }
        }
        file.tensors.insert(name, HostTensor { shape, values: dense });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_round_trip_is_exact_and_smaller() {
        let mut file = TensorFile::default();
        let mut values = vec![0.0f32; 1000];
        values[3] = 1.5;
        values[999] = -2.0;
        let t = HostTensor {
            shape: vec![10, 100],
            values,
        };
        file.tensors.insert("w".into(), t.clone());
        file.tensors.insert(
            "dense".into(),
            HostTensor {
                shape: vec![2],
                values: vec![1.0, 2.0],
            },
        );
        sparsify(&mut file, &["w", "dense"]);
        assert!(file.tensors.contains_key("dense"));
        assert!(!file.tensors.contains_key("w"));
        let bytes = file.to_bytes().unwrap();
        assert!(bytes.len() < 1000);
        let mut back = TensorFile::from_bytes("x", &bytes).unwrap();
        densify(&mut back).unwrap();
        assert_eq!(back.tensors["w"], t);
    }

    #[test]
    fn inconsistent_records_are_errors() {
        let mut file = TensorFile::default();
        let mut values = vec![0.0f32; 16];
        values[0] = 1.0;
        file.tensors.insert(
            "w".into(),
            HostTensor {
                shape: vec![16],
                values,
            },
        );
        sparsify(&mut file, &["w"]);
        file.tensors.get_mut("w.values").unwrap().values.push(3.0);
        assert!(
            densify(&mut file.clone())
                .unwrap_err()
                .to_string()
                .contains("disagree")
        );
        let mut overflow = file.clone();
        overflow
            .metadata
            .insert(SPARSE_KEY.into(), r#"{"w":[18446744073709551615,2]}"#.into());
        assert!(
            densify(&mut overflow)
                .unwrap_err()
                .to_string()
                .contains("larger than any")
        );
        // each within a model's size, too many together: refused before anything is allocated
        let mut many = file.clone();
        let big = (crate::model::validate::MAX_PARAMS / 2 + 1).to_string();
        many.metadata
            .insert(SPARSE_KEY.into(), format!(r#"{{"a":[{big}],"b":[{big}]}}"#));
        assert!(
            densify(&mut many)
                .unwrap_err()
                .to_string()
                .contains("more values than any model holds")
        );
        file.bytes.remove("w.mask");
        assert!(
            densify(&mut file)
                .unwrap_err()
                .to_string()
                .contains("mask missing")
        );
    }
}
