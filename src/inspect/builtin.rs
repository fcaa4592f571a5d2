//! The model files built into the binary (see README for the commands that made them).

/// The model that ships with the app (MNIST, `small` preset).
pub static BUILTIN_MODEL: &[u8] = include_bytes!("../../assets/models/mnist-small.safetensors");

/// The shipped MNIST model with 75% of its capsules removed, fine-tuned and compacted.
pub static BUILTIN_PRUNED_MODEL: &[u8] = include_bytes!("../../assets/models/mnist-small-pruned.safetensors");

/// The built-in models as (name, file bytes); the app loads the first at start.
pub static BUILTIN_MODELS: [(&str, &[u8]); 2] = [
    ("MNIST small, dense", BUILTIN_MODEL),
    ("MNIST small, 75% capsules pruned", BUILTIN_PRUNED_MODEL),
];
