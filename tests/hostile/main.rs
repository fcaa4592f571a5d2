//! Hostile inputs against the CLI: model files, datasets, images, special files, numbers
//! and output paths that a stranger could hand to sparsecaps. Every case runs the real
//! binary under a memory cap and a time limit; a refused input must exit with code 2 and
//! exactly one line on stderr, never panic, hang, abort on allocation or succeed silently.
//!
//! `SPARSECAPS_BIN=/path/to/sparsecaps cargo test --release --test hostile -- --nocapture`
//! runs the suite against another build and prints one verdict per case.

mod files;
mod folders;
mod inputs;
mod models;
mod mutate;
mod runner;

use std::path::{Path, PathBuf};

use files::ModelParts;
use inputs::{dataset_cases, file_cases, number_cases};
use models::model_cases;
use runner::{Case, Expect, run_all};

/// `eval` of a model file on 20 MNIST test images on the CPU.
fn eval(kind: &'static str, name: &str, expect: Expect, model: &Path) -> Case {
    Case::new(
        kind,
        name,
        expect,
        &[
            &"eval",
            &"--model",
            &model,
            &"--limit-test",
            &"20",
            &"--device",
            &"cpu",
        ],
    )
}

fn check(cases: &[Case]) {
    let failures = run_all(cases);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.safetensors");
    ModelParts::tiny().write(&path);
    path
}

#[test]
fn hostile_model_files_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    check(&model_cases(dir.path()));
}

#[test]
fn hostile_datasets_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    check(&dataset_cases(dir.path(), &model));
}

#[test]
fn hostile_image_folders_and_cifar_batches_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    check(&folders::folder_cases(dir.path()));
}

#[test]
fn hostile_images_special_files_and_output_paths_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    check(&file_cases(dir.path(), &model));
}

#[test]
fn hostile_numbers_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    check(&number_cases(dir.path(), &model));
}
