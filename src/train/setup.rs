//! Setting a run up before its first step: its data (limits and the validation split), the
//! network it starts from, and the checks that can refuse it before it is announced.

use burn::optim::record::OptimizerRecord;
use burn::prelude::*;
use burn::tensor::Bytes;

use super::messages::{Event, TrainError, TrainRequest};
use super::threshold::THRESHOLD_PROBE_IMAGES;
use super::worker::Emitter;
use crate::data::{Dataset, DeviceSplit, Split};
use crate::errors::in_context;
use crate::model::CapsNet;
use crate::prune::{DeviceMasks, Masks};

/// The validation split and its threshold probe on `device`, or `None` when it is empty.
pub(super) fn resident_validation(validation: &Split, device: &Device) -> Option<(DeviceSplit, DeviceSplit)> {
    if validation.is_empty() {
        return None;
    }
    let mut probe = validation.clone();
    probe.truncate(THRESHOLD_PROBE_IMAGES);
    Some((
        DeviceSplit::upload(validation, device),
        DeviceSplit::upload(&probe, device),
    ))
}

/// The dataset with `limit`s applied and the validation split held out of the training set.
pub(super) fn load_data(
    req: &TrainRequest,
    emit: &Emitter,
    go_on: &(dyn Fn() -> bool + Sync),
) -> Result<(Dataset, Split), TrainError> {
    let limits = (req.limit_train, req.limit_test);
    let data = Dataset::load_until(&req.data, limits, &|p| emit.progress(Event::Loading(p)), go_on);
    let mut data = data.map_err(|e| TrainError::Data(in_context(&format!("dataset {}", req.data), &e)))?;
    let needed = req.prune.needs_validation() || req.patience.is_some();
    let held_out = match req.validation {
        Some(n) => n,
        None if needed => (data.train.len() / 10).min(5000),
        None => 0,
    };
    if needed && held_out == 0 {
        // without one, LOBSTER would never take a threshold step and --patience never stop
        return Err(TrainError::Refused(format!(
            "LOBSTER and --patience need a validation split, and 10% of {} training images is none: train on more images or give --validation N",
            data.train.len()
        )));
    }
    if held_out >= data.train.len() {
        return Err(TrainError::Refused(format!(
            "validation split of {held_out} leaves no training images (of {})",
            data.train.len()
        )));
    }
    let validation = data.train.split_off(held_out);
    Ok((data, validation))
}

/// Masks that keep a started-from model's pruned weights at zero: `None` when none of its
/// prunable weights is exactly zero (a dense model as trained, or a compact one whose kept
/// tensors are whole).
pub(super) fn kept_zeros(model: &CapsNet, ad: &Device) -> Option<DeviceMasks> {
    let masks = Masks::from_nonzero(&model.valid());
    (masks.sparsity() > 0.0).then(|| masks.to_device(ad))
}

/// A fresh network of the preset for the data, or the model a resumed run's checkpoint or
/// `init` names (dense, pruned or compact), on `ad`, with the preset its checkpoints name
/// (the file's own, which `--preset` does not change).
pub(super) fn build_model(
    req: &TrainRequest,
    data: &Dataset,
    device: &Device,
    ad: &Device,
) -> Result<(CapsNet, Option<String>), TrainError> {
    let mut preset = Some(req.preset.to_string());
    let start = req.resume.as_ref().map(|r| &r.model).or(req.init.as_ref());
    let model = match start {
        Some(path) => {
            let (m, info) = crate::export::load_model(path, device)?;
            data.check_fits(m.config.input(), m.config.classes)
                .map_err(|e| TrainError::Data(in_context(&path.display().to_string(), &e)))?;
            preset = info.preset;
            m.fork(ad).train()
        }
        None => {
            let t = &data.train;
            let mut config = req.preset.config().for_input(t.channels, t.height, t.width);
            // named classes (image folders, CIFAR-10) set the class capsules; IDX labels
            // are digits, at most ten
            if !data.classes.is_empty() {
                config.classes = data.classes.len();
            }
            // colour data is normalised per channel with the training split's statistics
            let config = if t.channels > 1 {
                let (mean, std) = t.channel_stats();
                config.with_normalisation(mean, std)
            } else {
                config
            };
            let config = if req.no_decoder {
                config.with_decoder_hidden(vec![])
            } else {
                config
            };
            CapsNet::init(&config, req.seed, ad)?
        }
    };
    data.check_fits(model.config.input(), model.config.classes)?;
    model.config.check_batch(req.batch.max(1))?;
    model.check_batch_on_device(req.batch.max(1))?;
    Ok((model, preset))
}

/// All that can refuse the run, checked before it is announced: the run folder (created,
/// and its files writable), and for a resumed run Adam's record, which is decoded and whose
/// parameter ids `model` is given (`None` for a run that is not resumed). A record that
/// does not fit is an error naming its file.
pub(super) fn check_before_start(
    req: &TrainRequest,
    model: &mut CapsNet,
) -> Result<Option<OptimizerRecord>, TrainError> {
    if let Some(dir) = &req.out_dir {
        crate::fsio::prepare_output_dir(
            dir,
            &["model.safetensors", "metrics.csv", "config.json"],
            &[super::resume::RESUME_DIR],
        )?;
        super::resume::check_resume_names(dir)?;
    }
    let Some(r) = &req.resume else {
        return Ok(None);
    };
    let file = req
        .out_dir
        .as_ref()
        .map(|d| {
            super::resume::optimizer_path(d, r.state.epoch)
                .display()
                .to_string()
        })
        .unwrap_or_else(|| "the resume record".into());
    if !model.set_param_ids(&r.state.param_ids) {
        return Err(TrainError::Resume(format!(
            "{file}: the resume record does not match the checkpoint's parameters"
        )));
    }
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(r.optimizer.clone()))
        .map_err(|e| TrainError::Resume(format!("{file}: not an optimiser record of this version: {e}")))?;
    Ok(Some(record))
}
