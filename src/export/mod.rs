//! Model files: safetensors I/O with atomic writes, and the model file format.

pub mod model_file;
pub mod sparse;
pub mod tensors;

pub use model_file::{
    FORMAT_VERSION, ModelFileError, ModelInfo, load_model, load_model_bytes, save_model, save_model_as,
};
pub use tensors::{TensorFile, TensorFileError, write_atomic, write_json_atomic};
