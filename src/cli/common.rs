//! What several subcommands share: loading a model with the dataset it belongs to.

use std::path::Path;

use anyhow::Context;
use burn::prelude::*;

use crate::data::{DataSource, Dataset};
use crate::export::{ModelInfo, load_model};
use crate::model::CapsNet;

/// Loads a dataset keeping at most `limits` = (train, test) images, with a progress bar
/// on a terminal while an image folder decodes.
pub fn load_dataset(source: &DataSource, limits: (Option<usize>, Option<usize>)) -> anyhow::Result<Dataset> {
    let bar = std::sync::Mutex::new(None::<super::progress::Progress>);
    let data = Dataset::load_with(source, limits, &|p| {
        if let Ok(mut bar) = bar.lock() {
            bar.get_or_insert_with(|| super::progress::Progress::bar_only(p.total as u64, "load"))
                .update(p.done as u64, "images decoded");
        }
    });
    if let Ok(Some(bar)) = bar.into_inner() {
        bar.finish();
    }
    data.with_context(|| format!("dataset {source}"))
}

/// A model file, its facts and its dataset.
pub struct Loaded {
    /// The network.
    pub model: CapsNet,
    /// Facts stored with it.
    pub info: ModelInfo,
    /// The dataset (limited as asked).
    pub data: Dataset,
    /// Where the dataset came from.
    pub source: DataSource,
}

/// Loads a model file and a dataset: `data` if given, else the one the model was trained
/// on, else MNIST. With `dense_for`, a compact model is expanded to its dense layout (its
/// pruned weights zero) and a line says so (`dense_for` names the command). Fails if the
/// images do not fit the model's input.
pub fn load_with_data(
    path: &Path,
    data: Option<DataSource>,
    limits: (Option<usize>, Option<usize>),
    device: &Device,
    dense_for: Option<&str>,
) -> anyhow::Result<Loaded> {
    let (mut model, info) = load_model(path, device)?;
    if let (Some(verb), Some(_)) = (dense_for, &model.compact) {
        model = crate::prune::expand(&model).into_owned();
        eprintln!(
            "{} is a compact model: {verb} works on its dense layout, its pruned weights zero",
            path.display()
        );
    }
    let source = data
        .or_else(|| info.dataset.as_deref().and_then(|d| d.parse().ok()))
        .unwrap_or(DataSource::Mnist);
    let data = load_dataset(&source, limits)?;
    data.check_fits(model.config.input(), model.config.classes)
        .with_context(|| format!("dataset {source}"))?;
    Ok(Loaded {
        model,
        info,
        data,
        source,
    })
}
