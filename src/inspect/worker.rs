//! The inspection worker: a thread that answers the canvas and the sparsity slider, so the
//! UI never runs the network itself. It keeps the model as loaded, prunes a copy on request
//! (non-destructively), evaluates it on held-out test digits, and fine-tunes under the
//! slider's mask when the user keeps it.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Instant;

use burn::prelude::*;

use super::digit::{image_tensor, inspect_digit};
use super::messages::{
    InspectCommand, InspectError, InspectEvent, KeepRequest, ModelSummary, OWN_TEST_IMAGES, PruneMethod,
    draws_digits, same_pruning,
};
use crate::data::folder::FolderError;
use crate::data::{DataError, DataSource, Dataset, Split};
use crate::export::ModelInfo;
use crate::model::{CapsNet, HostTensor};
use crate::prune::magnitude::MagnitudeOrder;
use crate::prune::{Masks, compact};
use crate::threads::WorkerHandle;
use crate::train::finetune::{FinetuneSettings, finetune_until};
use crate::train::worker::Waker;

mod slider;
pub use slider::BN_IMAGES;
use slider::Refine;

/// Held-out test digits the app's slider evaluates on.
pub const HELD_OUT: usize = 256;

/// MNIST's test digits as (the rest, the last [`HELD_OUT`] digits the slider evaluates on).
pub fn mnist_held_out() -> Result<(Split, Split), DataError> {
    let mut test = Dataset::mnist_test()?;
    let held = test.split_off(HELD_OUT);
    Ok((test, held))
}

/// Which commands of a batch a later one of the same [`InspectCommand::latest_wins`] kind
/// makes pointless (the outbox's rule): only the latest slider position, image, dimension
/// offsets and model matter, so the others are skipped. A command that always counts
/// ("Keep", "Export", "Reset", ...) is a barrier: it sees the state the commands before it
/// made, so none of those is skipped for a newer one after it.
fn superseded(batch: &[InspectCommand]) -> Vec<bool> {
    let mut later = Vec::new();
    let mut skip = vec![false; batch.len()];
    for (i, c) in batch.iter().enumerate().rev() {
        match c.latest_wins() {
            Some(kind) if later.contains(&kind) => skip[i] = true,
            Some(kind) => later.push(kind),
            None => later.clear(),
        }
    }
    skip
}

/// The first [`OWN_TEST_IMAGES`] test images of the dataset a model was trained on, as
/// (images to pick from, the last [`HELD_OUT`] of them held out for the slider).
fn own_test_images(info: &ModelInfo) -> Result<(Split, Split), String> {
    let name = info
        .dataset
        .as_deref()
        .ok_or("the model file does not name its dataset")?;
    let source: DataSource = name.parse().unwrap_or(DataSource::Mnist);
    // one training image: an image folder then decodes only the test images it keeps
    let data = Dataset::load_with(&source, (Some(1), Some(OWN_TEST_IMAGES)), &|_| {})
        .map_err(|e| format!("dataset {name}: {e}"))?;
    let mut pick = data.test;
    let held = pick.split_off(HELD_OUT.min(pick.len() / 2));
    Ok((pick, held))
}

/// Whether the app's held-out MNIST digits (`held`) serve `model` (file facts `info`) as its
/// slider's held-out images and its test images: a digit model they fit.
fn app_digits_serve(model: &CapsNet, info: &ModelInfo, held: &Split) -> bool {
    let c = &model.config;
    draws_digits(c.input(), info.dataset.as_deref()) && held.check_fits(c.input(), c.classes).is_ok()
}

/// Whether an answer means the model or its pruning changed, so a remembered image should
/// be inspected again.
fn changes_the_model(e: &InspectEvent) -> bool {
    matches!(e, InspectEvent::ModelReady(_) | InspectEvent::Pruned(_))
}

/// Held-out images a slider move is evaluated on before its first answer; the rest are
/// evaluated afterwards, while no newer command waits, and refine the answer.
pub const QUICK_EVAL: usize = 64;

/// Capsules listed in an inspection.
pub const TOP_CAPSULES: usize = 10;

/// Handle to the inspection worker thread (named `sparsecaps-inspector`).
pub type Inspector = WorkerHandle<InspectCommand, InspectEvent>;

impl WorkerHandle<InspectCommand, InspectEvent> {
    /// Starts the inspection worker on `device`.
    pub fn spawn(device: Device, waker: Option<Waker>) -> std::io::Result<Self> {
        WorkerHandle::start(
            "sparsecaps-inspector",
            (64, 64),
            InspectCommand::Shutdown,
            move |commands, events, cancel| {
                State::new(device, cancel).serve(&commands, &events, waker.as_ref())
            },
        )
    }
}

struct State {
    device: Device,
    /// Raised by the UI to stop "Keep"'s fine-tuning (the app lowers it as it sends a Keep).
    cancel: crate::threads::CancelFlag,
    /// The model as loaded (what "Reset" returns to).
    original: Option<(CapsNet, ModelInfo)>,
    /// The model the slider prunes (the original, or the last kept one).
    dense: Option<CapsNet>,
    /// The slider's pruned model, masked but not compacted.
    pruned: Option<CapsNet>,
    /// The pruned model, compacted: what inspections run on.
    current: Option<CapsNet>,
    held_out: Option<Split>,
    /// MNIST's test digits less the held-out ones (`LoadMnistDigits`): what a digit model's
    /// "Random test digit" picks from.
    mnist_digits: Option<Split>,
    /// For a model the app's held-out digits do not fit: test images of its own dataset,
    /// as (images to pick from, held-out images for the slider), or why there are none.
    own_images: Option<Result<(Split, Split), String>>,
    last_digit: Option<(Vec<f32>, usize)>,
    /// Cached per `dense` model: magnitude order and capsule importance.
    order: Option<MagnitudeOrder>,
    importance: Option<Vec<f32>>,
    /// The last slider position.
    slider: (f64, PruneMethod),
    /// Number of the model the slider prunes (`dense`): one more for each load or Keep.
    model_id: u64,
    /// `model_id` of the model as loaded (`original`).
    original_id: u64,
    /// The last slider move's evaluation, when its first answer left images unseen.
    refine: Option<Refine>,
}

impl State {
    fn new(device: Device, cancel: crate::threads::CancelFlag) -> Self {
        Self {
            device,
            cancel,
            original: None,
            dense: None,
            pruned: None,
            current: None,
            held_out: None,
            mnist_digits: None,
            own_images: None,
            last_digit: None,
            order: None,
            importance: None,
            slider: (0.0, PruneMethod::Magnitude),
            model_id: 0,
            original_id: 0,
            refine: None,
        }
    }

    fn serve(
        mut self,
        commands: &Receiver<InspectCommand>,
        events: &SyncSender<InspectEvent>,
        waker: Option<&Waker>,
    ) {
        let wake = || {
            if let Some(w) = waker {
                w();
            }
        };
        loop {
            // a waiting command comes first; an idle moment finishes a slider move's evaluation
            let first = match commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    if let Some(refined) = self.refine_step() {
                        if events.send(refined).is_err() {
                            return;
                        }
                        wake();
                        continue;
                    }
                    match commands.recv() {
                        Ok(c) => c,
                        Err(_) => return,
                    }
                }
            };
            let mut batch = vec![first];
            loop {
                match commands.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let skip = superseded(&batch);
            for (cmd, skip) in batch.into_iter().zip(skip) {
                let answers = match cmd {
                    InspectCommand::Shutdown => return,
                    _ if skip => vec![],
                    cmd => self.answer(cmd, events, &wake),
                };
                for a in answers {
                    if events.send(a).is_err() {
                        return;
                    }
                    wake();
                }
            }
        }
    }

    /// Answers one command; a panic answers as an error, and the worker keeps serving.
    fn answer(
        &mut self,
        cmd: InspectCommand,
        events: &SyncSender<InspectEvent>,
        wake: &dyn Fn(),
    ) -> Vec<InspectEvent> {
        let keeping = matches!(cmd, InspectCommand::Keep(_));
        crate::threads::catch_panic(|| {
            let mut answers = match cmd {
                // progress is dropped rather than waited for when the UI lags behind
                InspectCommand::Keep(req) => self.keep(&req, |e| {
                    if events.try_send(e).is_ok() {
                        wake();
                    }
                }),
                InspectCommand::PickTestImage(n) => self.pick(n),
                InspectCommand::LoadImage { path, input, digits } => {
                    match super::image::load_input(&path, input, digits) {
                        Ok(px) => vec![InspectEvent::ImageLoaded(px.clone()), self.inspect(px)],
                        Err(e) => vec![InspectEvent::Failed(InspectError::Image(e.to_string()))],
                    }
                }
                cmd => self.handle(cmd).into_iter().collect(),
            };
            // a change of model or pruning is followed by a fresh inspection of the
            // remembered image
            if answers.iter().any(changes_the_model) {
                answers.extend(self.reinspect());
            }
            answers
        })
        .unwrap_or_else(|e| {
            let e = InspectError::Panicked(e);
            vec![if keeping {
                InspectEvent::KeepFailed(e)
            } else {
                InspectEvent::Failed(e)
            }]
        })
    }

    /// Answers a command that is neither "Keep" nor a pick.
    fn handle(&mut self, cmd: InspectCommand) -> Option<InspectEvent> {
        match cmd {
            InspectCommand::SetModel(m) => Some(self.use_model(*m, ModelInfo::default())),
            InspectCommand::Load(path) => Some(match crate::export::load_model(&path, &self.device) {
                Ok((m, info)) => self.use_model(m, info),
                Err(e) => InspectEvent::Failed(InspectError::Load(e.to_string())),
            }),
            InspectCommand::LoadBytes { name, bytes } => {
                Some(match crate::export::load_model_bytes(name, bytes, &self.device) {
                    Ok((m, info)) => self.use_model(m, info),
                    Err(e) => InspectEvent::Failed(InspectError::Load(e.to_string())),
                })
            }
            InspectCommand::Reset => self.original.take().map(|(m, info)| self.use_model(m, info)),
            InspectCommand::Export {
                path,
                model_id,
                pruning,
            } => Some(if self.shows(model_id, pruning) {
                self.export(&path)
            } else {
                InspectEvent::Failed(InspectError::Export(
                    "the model or the pruning changed before the export started; export again".into(),
                ))
            }),
            InspectCommand::SetHeldOut(s) => {
                self.set_held_out(*s);
                None
            }
            InspectCommand::LoadMnistDigits => match mnist_held_out() {
                Ok((digits, held)) => {
                    self.mnist_digits = Some(digits);
                    self.set_held_out(held);
                    None
                }
                Err(e) => Some(InspectEvent::Failed(InspectError::NoTestImages(format!(
                    "MNIST's test digits: {e}"
                )))),
            },
            InspectCommand::Inspect(pixels) => Some(self.inspect(pixels)),
            InspectCommand::Forget => {
                self.last_digit = None;
                Some(InspectEvent::Forgotten)
            }
            InspectCommand::PickTestImage(_) | InspectCommand::LoadImage { .. } => None,
            InspectCommand::SetSparsity { sparsity, method } => Some(self.prune(sparsity, method)),
            InspectCommand::Perturb(delta) => self.perturb(&delta),
            InspectCommand::Keep(_) | InspectCommand::Shutdown => None,
        }
    }

    /// The remembered image inspected again (after the model or its pruning changed), or
    /// `Forgotten` when the model in use no longer takes it.
    fn reinspect(&mut self) -> Option<InspectEvent> {
        let (pixels, _) = self.last_digit.take()?;
        let takes = self.current.as_ref()?.config.pixels() == pixels.len();
        Some(if takes {
            self.inspect(pixels)
        } else {
            InspectEvent::Forgotten
        })
    }

    fn use_model(&mut self, model: CapsNet, info: ModelInfo) -> InspectEvent {
        let s = ModelSummary::of(&model, info.clone());
        let fits = |h: &Split| h.check_fits(model.config.input(), model.config.classes).is_ok();
        self.own_images = match &self.held_out {
            Some(h) if app_digits_serve(&model, &info, h) => None,
            _ => Some(own_test_images(&info).and_then(|(pick, held)| {
                if fits(&held) {
                    Ok((pick, held))
                } else {
                    Err("its test images do not fit it".into())
                }
            })),
        };
        self.set_dense(model.clone());
        self.original = Some((model, info));
        self.original_id = self.model_id;
        self.slider = (0.0, PruneMethod::Magnitude);
        InspectEvent::ModelReady(Box::new(ModelSummary {
            model_id: self.model_id,
            ..s
        }))
    }

    /// The images the slider evaluates on and ranks capsules by: the app's held-out digits,
    /// or the model's own test images when those do not fit it.
    fn held(&self) -> Option<&Split> {
        match &self.own_images {
            Some(own) => own.as_ref().ok().map(|(_, held)| held),
            None => self.held_out.as_ref(),
        }
    }

    /// The app's held-out digits replace the model's own test images for a digit model
    /// they fit.
    fn set_held_out(&mut self, held: Split) {
        if let Some((d, info)) = &self.original
            && app_digits_serve(d, info, &held)
        {
            self.own_images = None;
        }
        self.held_out = Some(held);
        self.importance = None;
    }

    /// Test image `n` (MNIST's for a model the app's digits fit, else of the model's own
    /// dataset), and its inspection.
    fn pick(&mut self, n: usize) -> Vec<InspectEvent> {
        let images = match (&self.own_images, &self.mnist_digits) {
            (None, Some(digits)) if !digits.is_empty() => digits,
            (None, _) => {
                return vec![InspectEvent::Failed(InspectError::NoTestImages(
                    "MNIST's test digits are not loaded".into(),
                ))];
            }
            (Some(Ok((pick, _))), _) if !pick.is_empty() => pick,
            (Some(Err(e)), _) => {
                return vec![InspectEvent::Failed(InspectError::NoTestImages(e.clone()))];
            }
            (Some(Ok(_)), _) => {
                return vec![InspectEvent::Failed(InspectError::NoTestImages(
                    "the model's own dataset has none".into(),
                ))];
            }
        };
        let i = n % images.len();
        let pixels = images.image_f32(i);
        let label = images.labels[i] as usize;
        vec![
            InspectEvent::Picked {
                pixels: pixels.clone(),
                label,
            },
            self.inspect(pixels),
        ]
    }

    /// Whether the worker is at the model and slider position a request names (what the
    /// screen showed when it was sent).
    fn shows(&self, model_id: u64, pruning: (f64, PruneMethod)) -> bool {
        self.model_id == model_id && same_pruning(self.slider, pruning)
    }

    /// Makes `model` the one the slider prunes, unpruned for now (a new model number).
    fn set_dense(&mut self, model: CapsNet) {
        self.model_id += 1;
        self.refine = None;
        self.order = None;
        self.importance = None;
        self.pruned = Some(model.clone());
        self.current = Some(model.clone());
        self.dense = Some(model);
    }

    fn inspect(&mut self, pixels: Vec<f32>) -> InspectEvent {
        let Some(model) = &self.current else {
            return InspectEvent::Failed(InspectError::NoModel);
        };
        let c = &model.config;
        if pixels.len() != c.pixels() {
            return InspectEvent::Failed(InspectError::ImageSize {
                got: pixels.len(),
                want: c.pixels(),
            });
        }
        let r = inspect_digit(model, &pixels, TOP_CAPSULES, &self.device);
        self.last_digit = Some((pixels, r.prediction));
        InspectEvent::Inspected(Box::new(r))
    }

    fn export(&self, path: &std::path::Path) -> InspectEvent {
        let Some(model) = &self.current else {
            return InspectEvent::Failed(InspectError::NoModel);
        };
        let small = match compact(model) {
            Ok(m) => m,
            Err(e) => return InspectEvent::Failed(InspectError::Export(e.to_string())),
        };
        let mut base = self.original.as_ref().map(|o| o.1.clone()).unwrap_or_default();
        if self.model_id != self.original_id || self.slider.0 != 0.0 {
            // pruned or fine-tuned here: the file's test accuracy was the loaded model's
            base.test_accuracy = None;
        }
        let info = crate::prune::with_sparsity(base, &small);
        if let Err(e) = crate::export::save_model(&small, &info, path) {
            return InspectEvent::Failed(InspectError::Export(e.to_string()));
        }
        let time = |m: &CapsNet| {
            let x = Tensor::<4>::zeros(
                [32, m.config.in_channels, m.config.height, m.config.width],
                &self.device,
            );
            let _ = m.forward(x.clone(), false).lengths.into_data();
            let t = Instant::now();
            let _ = m.forward(x, false).lengths.into_data();
            t.elapsed().as_secs_f64() * 1e3
        };
        let dense_ms = time(self.dense.as_ref().unwrap_or(model));
        let compact_ms = time(&small);
        InspectEvent::Exported {
            path: path.to_path_buf(),
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            dense_ms,
            compact_ms,
        }
    }

    /// Fine-tunes the slider's pruned model under its mask and makes it the model the
    /// slider prunes from now on. Reports progress through `progress`.
    fn keep(&mut self, req: &KeepRequest, mut progress: impl FnMut(InspectEvent)) -> Vec<InspectEvent> {
        let Some(pruned) = self.pruned.clone() else {
            return vec![InspectEvent::KeepFailed(InspectError::NoModel)];
        };
        if !self.shows(req.model_id, req.pruning) {
            return vec![InspectEvent::KeepFailed(InspectError::Prune(
                "Keep: the model or the pruning changed before it started; move the slider and Keep again"
                    .into(),
            ))];
        }
        let refuse = |reason: String| {
            vec![InspectEvent::KeepFailed(InspectError::Dataset {
                data: req.data.to_string(),
                reason,
            })]
        };
        // "Cancel" stops the decoding of an image folder (CIFAR-10: 60,000 files) as well as
        // the fine-tuning
        let cancel = self.cancel.clone();
        let go_on = move || !cancel.load(std::sync::atomic::Ordering::Relaxed);
        // a cancel wins over whatever else the load or the check ran into meanwhile
        let failed = |reason: String| {
            if go_on() {
                refuse(reason)
            } else {
                vec![InspectEvent::KeepCancelled]
            }
        };
        // one test image is enough to check the folder: Keep trains on the training images
        let data = match Dataset::load_until(&req.data, (Some(req.images), Some(1)), &|_| {}, &go_on) {
            Ok(d) => d,
            Err(DataError::Folder(FolderError::Cancelled)) => return vec![InspectEvent::KeepCancelled],
            Err(e) => return failed(e.to_string()),
        };
        if let Err(e) = data.check_fits(pruned.config.input(), pruned.config.classes) {
            return failed(e.to_string());
        }
        if !go_on() {
            return vec![InspectEvent::KeepCancelled];
        }
        let masks = Masks::from_nonzero(&pruned);
        let settings = FinetuneSettings {
            epochs: req.epochs,
            ..FinetuneSettings::default()
        };
        let mut reported = 0;
        let (tuned, completed) = finetune_until(
            pruned,
            &masks,
            &data.train,
            settings,
            &self.device,
            |done, total| {
                // about a hundred updates in all
                if done == total || done * 100 >= (reported + 1) * total {
                    reported = done * 100 / total.max(1);
                    progress(InspectEvent::Tuning { done, total });
                }
                go_on()
            },
        );
        if !completed {
            return vec![InspectEvent::KeepCancelled];
        }
        let info = self.original.as_ref().map(|o| o.1.clone()).unwrap_or_default();
        let (sparsity, method) = self.slider;
        let summary = ModelSummary::of(&tuned, info);
        self.set_dense(tuned);
        let summary = ModelSummary {
            model_id: self.model_id,
            ..summary
        };
        // the kept mask is the new model's zeros: pruning it again at the same position
        // gives the same mask, and the accuracy after fine-tuning
        vec![
            InspectEvent::Kept(Box::new(summary)),
            self.prune(sparsity, method),
        ]
    }

    fn perturb(&self, delta: &[f32]) -> Option<InspectEvent> {
        let model = self.current.as_ref()?;
        let (pixels, winner) = self.last_digit.as_ref()?;
        let c = &model.config;
        let out = model.forward(image_tensor(model, pixels, &self.device), false);
        let mut offsets = vec![0.0f32; c.classes * c.class_dim];
        for (e, d) in delta.iter().take(c.class_dim).enumerate() {
            offsets[winner * c.class_dim + e] = *d;
        }
        let offsets = Tensor::<3>::from_data(
            TensorData::new(offsets, [1, c.classes, c.class_dim]),
            &self.device,
        );
        let mut mask = vec![0.0f32; c.classes];
        mask[*winner] = 1.0;
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [1, c.classes]), &self.device);
        let recon = model.reconstruct(out.class_caps + offsets, mask)?;
        Some(InspectEvent::Reconstruction(
            HostTensor::from_tensor(recon).values,
        ))
    }
}

#[cfg(test)]
mod tests;
