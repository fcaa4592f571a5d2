//! What a run needs to continue exactly where its last checkpoint left it: the request,
//! the loop state (epoch, learning rate, LOBSTER's plateau, masks, history) and Adam's
//! moments, kept beside `model.safetensors` in `RUN_DIR/resume/`.
//!
//! A checkpoint of epoch E writes `resume/epoch-E.json` and `resume/epoch-E.bpk` (the
//! optimiser record) first and the model last; the model's epoch then names the matching
//! pair, and older pairs are removed. A crash anywhere in between leaves a model whose
//! pair is still there.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::messages::{EpochMetrics, TrainError, TrainRequest};
use super::plateau::Plateau;
use crate::export::{TensorFileError, write_atomic, write_json_atomic};

/// Folder of the resume files inside a run folder.
pub const RESUME_DIR: &str = "resume";
/// Version of the resume files. Version 1 (before 2026-11-29) recorded a resumed run's
/// own checkpoint as its `init`; it still reads, with that `init` dropped.
pub const RESUME_VERSION: u32 = 2;

/// Why a run cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A file is missing or unreadable.
    #[error("{path}: {reason} (was the run started by this version of sparsecaps with --out?)")]
    Missing {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A file is not what this version writes.
    #[error("{path}: not a resume record of this version: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The loop state at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub global_step: usize,
    /// Base learning rate (before the schedule's factor), after any change during the run.
    pub base_lr: f64,
    /// LOBSTER: the validation loss since the last threshold step.
    pub lobster: Plateau,
    /// Early stopping: the validation loss over the whole run.
    pub early_stop: Plateau,
    /// Whether pruning masks are in force (they are the zeros of the saved weights).
    pub masks_active: bool,
    /// Parameter ids of the network in [`crate::model::CapsNet::param_ids`] order; Adam's
    /// state is keyed by them.
    pub param_ids: Vec<u64>,
    /// Metrics of every epoch so far.
    pub history: Vec<EpochMetrics>,
    /// Fallbacks to the last finite state so far (the run gives up after a few; records
    /// written before this field count none).
    #[serde(default)]
    pub rollbacks: usize,
}

/// A resume record: borrowed when written (no copy of the request, whose resume point may
/// hold a whole optimizer state), owned when read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeFile<'a> {
    version: u32,
    request: Cow<'a, TrainRequest>,
    state: Cow<'a, RunState>,
}

fn state_path(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(RESUME_DIR).join(format!("epoch-{epoch}.json"))
}

/// The file of Adam's record of epoch `epoch` in run folder `dir`.
pub fn optimizer_path(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(RESUME_DIR).join(format!("epoch-{epoch}.bpk"))
}

/// Checks, before a run starts, that no checkpoint file name in `dir/resume/` is taken by
/// a folder, which would stop the run at its first checkpoint. A missing folder is fine.
pub fn check_resume_names(dir: &Path) -> Result<(), crate::fsio::OutputError> {
    let Ok(entries) = std::fs::read_dir(dir.join(RESUME_DIR)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let checkpoint = name.starts_with("epoch-") && (name.ends_with(".json") || name.ends_with(".bpk"));
        if checkpoint && entry.path().is_dir() {
            return Err(crate::fsio::OutputError {
                path: entry.path().display().to_string(),
                reason: "it is a folder".into(),
            });
        }
    }
    Ok(())
}

/// Writes the resume pair of `state.epoch` (before the model is written).
pub fn write_resume(
    dir: &Path,
    req: &TrainRequest,
    state: &RunState,
    optimizer: &[u8],
) -> Result<(), TensorFileError> {
    let folder = dir.join(RESUME_DIR);
    std::fs::create_dir_all(&folder).map_err(|source| TensorFileError::Io {
        path: folder.display().to_string(),
        source,
    })?;
    let file = ResumeFile {
        version: RESUME_VERSION,
        request: Cow::Borrowed(req),
        state: Cow::Borrowed(state),
    };
    write_atomic(&optimizer_path(dir, state.epoch), optimizer)?;
    // an unwritable record (a path that is not UTF-8) fails the checkpoint
    write_json_atomic(&state_path(dir, state.epoch), &file, false)
}

/// Removes the resume pairs of epochs other than `keep` (after the model of `keep` is
/// written).
pub fn prune_old_resume(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir.join(RESUME_DIR)) else {
        return;
    };
    let keep_names = [format!("epoch-{keep}.json"), format!("epoch-{keep}.bpk")];
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("epoch-") && !keep_names.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A run read back for resuming: its request (with `out_dir` set to `dir`), its state and
/// Adam's record bytes.
pub struct Resumed {
    /// The request the run was started with.
    pub request: TrainRequest,
    /// The loop state at the checkpoint.
    pub state: RunState,
    /// The optimiser record (burnpack bytes).
    pub optimizer: Vec<u8>,
}

/// An error's text without the leading "PATH: " (the resume error names the file itself).
fn without_path(e: &dyn std::fmt::Display, path: &Path) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", path.display());
    text.strip_prefix(&prefix).map_or(text.clone(), str::to_string)
}

/// Reads the resume pair matching epoch `epoch` (the epoch of the run's model).
pub fn read_resume(dir: &Path, epoch: usize) -> Result<Resumed, ResumeError> {
    let path = state_path(dir, epoch);
    let p = path.display().to_string();
    let missing = |reason: String| ResumeError::Missing {
        path: p.clone(),
        reason,
    };
    let bytes = crate::fsio::read_capped(&path, 256 << 20).map_err(|e| missing(without_path(&e, &path)))?;
    let format = |reason: String| ResumeError::Format {
        path: p.clone(),
        reason,
    };
    let file: ResumeFile<'static> = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    if !(1..=RESUME_VERSION).contains(&file.version) || file.state.epoch != epoch {
        return Err(format(format!(
            "version {} for epoch {}, expected version {RESUME_VERSION} or older for epoch {epoch}",
            file.version, file.state.epoch
        )));
    }
    let mut request = TrainRequest {
        out_dir: Some(dir.to_path_buf()),
        resume: None,
        ..file.request.into_owned()
    };
    // version 1 recorded a resumed run's own checkpoint as its start (as typed, perhaps
    // relative to another working directory); the run started from fresh weights or from
    // another file, which that record no longer names
    let own_model = dir.join("model.safetensors");
    if file.version == 1
        && request
            .init
            .as_deref()
            .is_some_and(|init| same_file(init, &own_model) || names_run_model(init, dir))
    {
        request.init = None;
    }
    let opt_path = optimizer_path(dir, epoch);
    let optimizer =
        crate::fsio::read_capped(&opt_path, crate::fsio::MAX_MODEL_FILE_BYTES * 4).map_err(|e| {
            ResumeError::Missing {
                path: opt_path.display().to_string(),
                reason: without_path(&e, &opt_path),
            }
        })?;
    Ok(Resumed {
        request,
        state: file.state.into_owned(),
        optimizer,
    })
}

/// The request that continues the run in `dir` from its last checkpoint, for
/// `epochs(done, total)` epochs in all, given the `done` epochs of the checkpoint and the
/// `total` the run asked for (that total if `None`).
///
/// Used by `train --resume` and by the app's "Resume run...".
pub fn resume_request(
    dir: &Path,
    epochs: impl FnOnce(usize, usize) -> Option<usize>,
) -> Result<TrainRequest, TrainError> {
    let model = dir.join("model.safetensors");
    let (_, info) = crate::export::load_model(&model, &burn::prelude::Device::flex())
        .map_err(|e| TrainError::Resume(format!("cannot resume {}: {e}", dir.display())))?;
    let epoch = info.epochs.filter(|e| *e > 0).ok_or_else(|| {
        TrainError::Resume(format!(
            "cannot resume {}: its model.safetensors records no finished epoch (not a checkpoint of `train --out`)",
            dir.display()
        ))
    })?;
    let r = read_resume(dir, epoch)?;
    let mut req = r.request;
    if let Some(n) = epochs(epoch, req.epochs) {
        req.epochs = n;
    }
    if req.epochs <= epoch {
        return Err(TrainError::Resume(format!(
            "{} has already trained {epoch} of {} epochs; ask for more epochs to continue",
            dir.display(),
            req.epochs
        )));
    }
    if let Some(patience) = req.patience
        && r.state.early_stop.stale >= patience
    {
        return Err(TrainError::Resume(format!(
            "{} stopped early after epoch {epoch}: its validation loss had not improved for {patience} epochs (--patience {patience}); to train it further, start a new run from its model with --init",
            dir.display()
        )));
    }
    req.resume = Some(Box::new(super::messages::ResumePoint {
        model,
        state: r.state,
        optimizer: r.optimizer,
    }));
    Ok(req)
}

/// Whether `init` reads `.../RUN/model.safetensors` for the run folder `dir` named RUN.
fn names_run_model(init: &Path, dir: &Path) -> bool {
    let run = std::path::absolute(dir).ok();
    let run_name = run.as_deref().and_then(Path::file_name);
    init.file_name() == Some(std::ffi::OsStr::new("model.safetensors"))
        && run_name.is_some()
        && init.parent().and_then(Path::file_name) == run_name
}

/// Whether `a` and `b` name the same existing file (the same path if either cannot be
/// resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_cannot_be_written_fails_instead_of_leaving_an_empty_file() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        // serde writes paths as UTF-8 strings: this one is not
        let init = std::ffi::OsStr::from_bytes(b"/tmp/r\xe9/model.safetensors");
        let req = TrainRequest {
            init: Some(init.into()),
            ..TrainRequest::default()
        };
        let state = RunState {
            epoch: 3,
            global_step: 30,
            base_lr: 1e-3,
            lobster: Plateau::new(0.0),
            early_stop: Plateau::new(0.0),
            masks_active: false,
            param_ids: vec![],
            history: vec![],
            rollbacks: 0,
        };
        let err = write_resume(dir.path(), &req, &state, b"adam").unwrap_err();
        assert!(err.to_string().contains("epoch-3.json"), "{err}");
        assert!(!state_path(dir.path(), 3).exists());
    }
}
