//! The model files built into the binary (see README for the commands that made them); none
//! in a build without the `embedded-data` feature.

/// The built-in models as (name, file bytes); the app loads the first at start.
#[cfg(feature = "embedded-data")]
pub static BUILTIN_MODELS: &[(&str, &[u8])] = &[
    (
        "MNIST small, dense",
        include_bytes!("../../assets/models/mnist-small.safetensors"),
    ),
    (
        "MNIST small, 75% capsules pruned",
        include_bytes!("../../assets/models/mnist-small-pruned.safetensors"),
    ),
    (
        "MNIST small, 95% capsules pruned",
        include_bytes!("../../assets/models/mnist-small-95.safetensors"),
    ),
    (
        "CIFAR-10 resnet-caps, dense",
        include_bytes!("../../assets/models/cifar10-resnet-caps.safetensors"),
    ),
];

/// The built-in models: none in this slim build.
#[cfg(not(feature = "embedded-data"))]
pub static BUILTIN_MODELS: &[(&str, &[u8])] = &[];
