//! Generators of hostile files: model files (safetensors written byte by byte, so shapes,
//! types and headers can lie), IDX files, gzip streams and images.

use std::io::Write;
use std::path::Path;

use burn::prelude::*;
use serde_json::{Map, Value, json};
use sparsecaps::export::ModelInfo;
use sparsecaps::export::model_file::model_to_file;
use sparsecaps::model::{CapsNet, CapsNetConfig, Preset};

/// One tensor of a raw safetensors file: name, dtype tag, declared shape, data bytes.
pub struct Raw {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

/// A model file as editable parts: metadata and raw tensors.
pub struct ModelParts {
    pub metadata: Map<String, Value>,
    pub tensors: Vec<Raw>,
}

impl ModelParts {
    /// A valid tiny model (trained on nothing) built from `config`.
    pub fn from_config(config: &CapsNetConfig) -> Self {
        let model = CapsNet::init(config, 1, &Device::flex()).expect("valid config");
        let info = ModelInfo {
            dataset: Some("mnist".into()),
            ..Default::default()
        };
        let file = model_to_file(&model, &info);
        let metadata = file
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut names: Vec<&String> = file.tensors.keys().collect();
        names.sort();
        let tensors = names
            .into_iter()
            .map(|n| {
                let t = &file.tensors[n];
                Raw {
                    name: n.clone(),
                    dtype: "F32",
                    shape: t.shape.iter().map(|&d| d as u64).collect(),
                    data: t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                }
            })
            .collect();
        Self { metadata, tensors }
    }

    /// The `tiny` preset.
    pub fn tiny() -> Self {
        Self::from_config(&Preset::Tiny.config())
    }

    /// Edits the model config (a JSON object in the metadata).
    pub fn config(mut self, edit: impl FnOnce(&mut Map<String, Value>)) -> Self {
        let text = self.metadata["config"].as_str().unwrap_or("{}").to_string();
        let mut cfg: Map<String, Value> = serde_json::from_str(&text).expect("config json");
        edit(&mut cfg);
        self.metadata
            .insert("config".into(), Value::String(Value::Object(cfg).to_string()));
        self
    }

    /// Sets a metadata entry.
    pub fn meta(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.into(), Value::String(value.into()));
        self
    }

    /// Edits one tensor.
    pub fn tensor(mut self, name: &str, edit: impl FnOnce(&mut Raw)) -> Self {
        let t = self
            .tensors
            .iter_mut()
            .find(|t| t.name == name)
            .expect("tensor exists");
        edit(t);
        self
    }

    /// Adds a tensor.
    pub fn push(mut self, t: Raw) -> Self {
        self.tensors.push(t);
        self
    }

    /// Serialises to safetensors bytes.
    pub fn bytes(&self) -> Vec<u8> {
        raw_safetensors(&self.tensors, &self.metadata)
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).expect("write model");
    }
}

/// Serialises tensors with whatever shapes and types they claim.
pub fn raw_safetensors(tensors: &[Raw], metadata: &Map<String, Value>) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), Value::Object(metadata.clone()));
    let mut offset = 0usize;
    for t in tensors {
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.len()]}),
        );
        offset += t.data.len();
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An IDX header followed by `data`.
pub fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// A gzip stream of an IDX header followed by `zeros` zero bytes, compressed as it goes
/// (a decompression bomb without holding it in memory).
pub fn gzip_bomb(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(header).expect("gzip");
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        e.write_all(&block[..n]).expect("gzip");
        left -= n;
    }
    e.finish().expect("gzip")
}

/// A folder of the four IDX files; `edit` may replace any of them by name
/// (`train-images-idx3-ubyte`, ...).
pub fn idx_dir(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let images = idx(0x803, &[4, 28, 28], &[0u8; 4 * 784]);
    let labels = idx(0x801, &[4], &[0, 1, 2, 3]);
    let mut files = vec![
        ("train-images-idx3-ubyte".to_string(), images.clone()),
        ("train-labels-idx1-ubyte".to_string(), labels.clone()),
        ("t10k-images-idx3-ubyte".to_string(), images),
        ("t10k-labels-idx1-ubyte".to_string(), labels),
    ];
    edit(&mut files);
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write idx");
    }
}

/// Replaces the named file's bytes in an [`idx_dir`] edit.
pub fn replace(files: &mut [(String, Vec<u8>)], name: &str, bytes: Vec<u8>) {
    if let Some(f) = files.iter_mut().find(|(n, _)| n == name) {
        f.1 = bytes;
    }
}

/// A PNG chunk with its CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A small PNG file whose header claims `width x height` grey pixels.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 1 << 16]).expect("zlib");
    out.extend(png_chunk(b"IDAT", &z.finish().expect("zlib")));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A valid 28x28 PNG of a bar (a "1").
pub fn png_digit() -> Vec<u8> {
    let mut img = image::GrayImage::new(28, 28);
    for y in 4..24 {
        for x in 13..16 {
            img.put_pixel(x, y, image::Luma([255]));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

/// Makes a FIFO at `path` (with the system's `mkfifo`).
pub fn fifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mkfifo {}", path.display());
}
