//! The sparsecaps model file: one safetensors file holding the weights (file layout of
//! [`crate::model::params`]) and, as metadata, the format name and version, the model
//! config and facts about the model (dataset, accuracy, ...).

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::sparse::{SPARSE_KEY, densify, sparsify};
use super::tensors::{TensorFile, TensorFileError};
use crate::model::PRUNABLE;
use crate::model::{CapsNet, CapsNetConfig, Compaction, ParamsError};

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "sparsecaps-model";
/// Current format version (`format_version` metadata key).
pub const FORMAT_VERSION: u32 = 1;

/// Facts about a model that travel with its weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Dataset it was trained on.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Preset it was built from.
    #[serde(default)]
    pub preset: Option<String>,
    /// Epochs trained.
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Test accuracy at save time (0..1).
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// Global sparsity of the prunable weights (of the dense network, for a compact one).
    #[serde(default)]
    pub sparsity: Option<f64>,
    /// Sparsity of each prunable tensor, by name.
    #[serde(default)]
    pub layer_sparsity: Option<Vec<(String, f64)>>,
    /// Class names by label (image-folder and CIFAR-10 data); empty when the classes are
    /// just numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

/// Why a model file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file itself is unreadable or not safetensors.
    #[error(transparent)]
    File(#[from] TensorFileError),
    /// The file is safetensors but not a sparsecaps model.
    #[error("{0}: not a sparsecaps model file (no '{FORMAT_NAME}' format tag)")]
    NotAModel(String),
    /// Written by an incompatible version.
    #[error(
        "{path}: model format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version {
        /// The file.
        path: String,
        /// Version found.
        found: String,
    },
    /// The config metadata is missing or invalid.
    #[error("{path}: bad model config: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A model with non-finite weights is not written.
    #[error("{path}: not written: tensor '{name}' holds NaN or infinite values (the training diverged)")]
    NotFinite {
        /// The file that was not written.
        path: String,
        /// The first tensor with a non-finite value.
        name: String,
    },
    /// The weights do not fit the config.
    #[error("{path}: {source}")]
    Params {
        /// The file.
        path: String,
        /// The mismatch.
        source: ParamsError,
    },
}

/// Builds the in-memory file of a model.
pub fn model_to_file(model: &CapsNet, info: &ModelInfo) -> TensorFile {
    let mut file = TensorFile::default();
    file.tensors.extend(model.to_named());
    file.metadata.insert("format".into(), FORMAT_NAME.into());
    file.metadata
        .insert("format_version".into(), FORMAT_VERSION.to_string());
    file.metadata.insert(
        "config".into(),
        serde_json::to_string(&model.config).unwrap_or_default(),
    );
    file.metadata
        .insert("info".into(), serde_json::to_string(info).unwrap_or_default());
    if let Some(k) = &model.compact {
        file.metadata
            .insert("compact".into(), serde_json::to_string(k).unwrap_or_default());
        // a compact export is also physically small: mostly-zero weights are stored sparsely
        sparsify(&mut file, &PRUNABLE);
    }
    file
}

/// Saves a model atomically; a model with a NaN or infinite weight is refused and nothing
/// is written.
pub fn save_model(model: &CapsNet, info: &ModelInfo, path: &Path) -> Result<(), ModelFileError> {
    save_model_as(model, info, path, false)
}

/// [`save_model`], with the weight tensors stored as 16-bit floats when `half` is set (half
/// the file; see [`TensorFile::half`]).
pub fn save_model_as(
    model: &CapsNet,
    info: &ModelInfo,
    path: &Path,
    half: bool,
) -> Result<(), ModelFileError> {
    let mut file = model_to_file(model, info);
    file.half = half;
    let mut names: Vec<&String> = file.tensors.keys().collect();
    names.sort();
    if let Some(name) = names
        .into_iter()
        .find(|n| file.tensors[*n].values.iter().any(|v| !v.is_finite()))
    {
        return Err(ModelFileError::NotFinite {
            path: path.display().to_string(),
            name: name.clone(),
        });
    }
    Ok(file.write(path)?)
}

/// Rebuilds a model from a parsed file; `path` only names the source in errors.
pub fn model_from_file(
    path: &str,
    file: &TensorFile,
    device: &Device,
) -> Result<(CapsNet, ModelInfo), ModelFileError> {
    let dense_file;
    let file = if file.metadata.contains_key(SPARSE_KEY) {
        let mut f = file.clone();
        densify(&mut f).map_err(|e| ModelFileError::Config {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        dense_file = f;
        &dense_file
    } else {
        file
    };
    let meta = &file.metadata;
    if meta.get("format").map(String::as_str) != Some(FORMAT_NAME) {
        return Err(ModelFileError::NotAModel(path.to_string()));
    }
    let version = meta.get("format_version").cloned().unwrap_or_default();
    if version != FORMAT_VERSION.to_string() {
        return Err(ModelFileError::Version {
            path: path.to_string(),
            found: version,
        });
    }
    let config_error = |reason: String| ModelFileError::Config {
        path: path.to_string(),
        reason,
    };
    let config = CapsNetConfig::from_json(meta.get("config").ok_or_else(|| config_error("missing".into()))?)
        .map_err(|e| config_error(e.to_string()))?;
    config.geometry().map_err(|e| config_error(e.to_string()))?;
    let info: ModelInfo = meta
        .get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let compact: Option<Compaction> = match meta.get("compact") {
        Some(s) => {
            Some(serde_json::from_str(s).map_err(|e| config_error(format!("compaction record: {e}")))?)
        }
        None => None,
    };
    let mut used: Vec<String> = Vec::new();
    let get = |n: &str| {
        used.push(n.to_string());
        file.tensors.get(n).cloned()
    };
    let model = CapsNet::from_named_compact(&config, compact, get, device).map_err(|source| {
        ModelFileError::Params {
            path: path.to_string(),
            source,
        }
    })?;
    let mut extra: Vec<&String> = file
        .tensors
        .keys()
        .chain(file.bytes.keys())
        .filter(|n| !used.contains(n))
        .collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(config_error(format!(
            "tensor '{name}' is not part of a model of this config"
        )));
    }
    Ok((model, info))
}

/// Loads a model file, checking format, version, config and every shape.
pub fn load_model(path: &Path, device: &Device) -> Result<(CapsNet, ModelInfo), ModelFileError> {
    let file = TensorFile::read(path)?;
    model_from_file(&path.display().to_string(), &file, device)
}

/// Loads a model file held in memory (`name` for messages), with [`load_model`]'s checks.
pub fn load_model_bytes(
    name: &str,
    bytes: &[u8],
    device: &Device,
) -> Result<(CapsNet, ModelInfo), ModelFileError> {
    let file = TensorFile::from_bytes(name, bytes)?;
    model_from_file(name, &file, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostTensor, Preset};

    fn tiny() -> CapsNet {
        CapsNet::init(&Preset::Tiny.config(), 5, &Device::flex()).unwrap()
    }

    #[test]
    fn save_load_round_trip_gives_identical_outputs() {
        let dev = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let model = tiny();
        let info = ModelInfo {
            dataset: Some("mnist".into()),
            test_accuracy: Some(0.5),
            ..Default::default()
        };
        save_model(&model, &info, &path).unwrap();
        let (back, back_info) = load_model(&path, &dev).unwrap();
        assert_eq!(back_info, info);
        assert_eq!(back.config, model.config);
        let x = Tensor::<4>::random(
            [2, 1, 28, 28],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &dev,
        );
        let a = model
            .forward(x.clone(), false)
            .lengths
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let b = back
            .forward(x, false)
            .lengths
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn compact_export_round_trips_and_bad_compaction_records_are_refused() {
        let dev = Device::flex();
        let net = tiny();
        let masks = crate::prune::magnitude_masks(&net, 0.9);
        let pruned = crate::prune::apply_masks(net, &masks.to_device(&dev));
        let small = crate::prune::compact(&pruned).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save_model(&small, &ModelInfo::default(), &path).unwrap();
        let (back, _) = load_model(&path, &dev).unwrap();
        assert_eq!(back.compact, small.compact);
        let x = Tensor::<4>::ones([2, 1, 28, 28], &dev) * 0.2;
        let a = small
            .forward(x.clone(), false)
            .lengths
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let b = back
            .forward(x, false)
            .lengths
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(a, b);
        // a record that does not match the tensors, or is not JSON, is refused
        let mut file = model_to_file(&small, &ModelInfo::default());
        let mut k = small.compact.clone().unwrap();
        k.capsules.pop();
        file.metadata
            .insert("compact".into(), serde_json::to_string(&k).unwrap());
        assert!(model_from_file("f", &file, &dev).is_err());
        file.metadata.insert("compact".into(), "[1,2".into());
        assert!(matches!(
            model_from_file("f", &file, &dev),
            Err(ModelFileError::Config { .. })
        ));
        // truncated file
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(load_model(&path, &dev), Err(ModelFileError::File(_))));
    }

    #[test]
    fn wrong_version_tag_and_shape_are_refused() {
        let dev = Device::flex();
        let mut file = model_to_file(&tiny(), &ModelInfo::default());
        file.metadata.insert("format_version".into(), "99".into());
        assert!(matches!(
            model_from_file("f", &file, &dev),
            Err(ModelFileError::Version { .. })
        ));
        file.metadata.remove("format");
        assert!(matches!(
            model_from_file("f", &file, &dev),
            Err(ModelFileError::NotAModel(_))
        ));
        let mut file = model_to_file(&tiny(), &ModelInfo::default());
        file.tensors.insert(
            "digit.bias".into(),
            HostTensor {
                shape: vec![3],
                values: vec![0.0; 3],
            },
        );
        let err = model_from_file("f", &file, &dev).unwrap_err();
        assert!(err.to_string().contains("digit.bias"), "{err}");
        let mut file = model_to_file(&tiny(), &ModelInfo::default());
        file.metadata.insert("config".into(), "{".into());
        assert!(matches!(
            model_from_file("f", &file, &dev),
            Err(ModelFileError::Config { .. })
        ));
    }
}
