//! Property tests: valid IDX, model and image files mutated at random (seeded, so a
//! failure reproduces) must be either accepted or refused with an error, never panic.
//! The parsers run in process; a panic fails the test with the seed and iteration.

use std::path::Path;

use burn::prelude::*;
use sparsecaps::data::idx::{parse_images, parse_labels};
use sparsecaps::export::TensorFile;
use sparsecaps::export::model_file::model_from_file;
use sparsecaps::inspect::load_image;
use sparsecaps::rng::Rng;

use super::files::{ModelParts, gzip, idx, png_digit};

/// Values that break arithmetic more often than random ones.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    7,
    255,
    65_535,
    1 << 31,
    u32::MAX as u64,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// One random edit of `bytes`: flip bits, overwrite with an interesting value, truncate,
/// duplicate a slice or insert junk.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len().max(1);
    let at = rng.below(len);
    match rng.below(6) {
        0 => {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let be = rng.below(2) == 0;
            let word = if be { v.to_be_bytes() } else { v.to_le_bytes() };
            let part = if be { &word[8 - width..] } else { &word[..width] };
            for (i, b) in part.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
        2 => bytes.truncate(at),
        3 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            let slice = bytes[at.min(end)..end].to_vec();
            let pos = rng.below(len).min(bytes.len());
            let tail = bytes.split_off(pos);
            bytes.extend(slice);
            bytes.extend(tail);
        }
        4 => {
            let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.below(256) as u8).collect();
            let tail = bytes.split_off(at.min(bytes.len()));
            bytes.extend(junk);
            bytes.extend(tail);
        }
        _ => {
            if let Some(b) = bytes.get_mut(at) {
                *b = rng.below(256) as u8;
            }
        }
    }
}

/// Applies 1-4 mutations.
fn mutated(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut b = original.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate(rng, &mut b);
    }
    b
}

/// Runs `check` on `iterations` mutants of `original`, naming the seed and iteration of
/// any panic.
fn fuzz(what: &str, seed: u64, iterations: usize, original: &[u8], mut check: impl FnMut(Vec<u8>)) {
    let mut rng = Rng::new(seed);
    for i in 0..iterations {
        let m = mutated(&mut rng, original);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(m)));
        assert!(r.is_ok(), "{what}: panic on mutant {i} of seed {seed}");
    }
}

#[test]
fn mutated_idx_files_never_panic() {
    let images = idx(
        0x803,
        &[3, 28, 28],
        &(0..3 * 784).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    let labels = idx(0x801, &[3], &[1, 2, 3]);
    for (seed, original) in [(1, images.clone()), (2, gzip(&images))] {
        fuzz("images", seed, 1500, &original, |b| {
            let _ = parse_images("mutant", b);
        });
    }
    for (seed, original) in [(3, labels.clone()), (4, gzip(&labels))] {
        fuzz("labels", seed, 1500, &original, |b| {
            let _ = parse_labels("mutant", b);
        });
    }
}

/// Mutates the JSON config inside the header: numbers become interesting values.
fn mutate_config(rng: &mut Rng, parts: ModelParts) -> ModelParts {
    let fields = [
        "in_channels",
        "height",
        "width",
        "conv1_channels",
        "conv1_kernel",
        "primary_kernel",
        "primary_stride",
        "types",
        "primary_dim",
        "classes",
        "class_dim",
        "routing_iters",
    ];
    let field = fields[rng.below(fields.len())];
    let value = INTERESTING[rng.below(INTERESTING.len())];
    parts.config(|c| {
        c.insert(field.into(), value.into());
    })
}

#[test]
fn mutated_model_files_never_panic() {
    let device = Device::flex();
    let load = |b: Vec<u8>| {
        if let Ok(file) = TensorFile::from_bytes("mutant", &b) {
            let _ = model_from_file("mutant", &file, &device);
        }
    };
    let original = ModelParts::tiny().bytes();
    // byte-level mutants mostly break the header: keep them cheap
    fuzz("model bytes", 5, 400, &original, &load);
    let mut rng = Rng::new(6);
    for i in 0..300 {
        let parts = mutate_config(&mut rng, ModelParts::tiny());
        let bytes = parts.bytes();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(bytes)));
        assert!(r.is_ok(), "config mutant {i} of seed 6 panicked");
    }
}

#[test]
fn mutated_images_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.png");
    fuzz("png", 7, 600, &png_digit(), |b| {
        std::fs::write(&path, b).unwrap();
        let _ = load_image(Path::new(&path), 28, 28);
    });
}
