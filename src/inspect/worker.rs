//! The inspection worker: a thread that answers the canvas and the sparsity slider, so the
//! UI never runs the network itself. It keeps the dense model, prunes a copy on request
//! (non-destructively), and evaluates it on held-out test digits.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Instant;

use burn::prelude::*;

use super::digit::{DigitInspection, image_tensor, inspect_digit};
use crate::data::Split;
use crate::model::{CapsNet, HostTensor};
use crate::prune::magnitude::MagnitudeOrder;
use crate::prune::{apply_masks, compact, survival};
use crate::train::evaluate;
use crate::train::handle::WorkerHandle;
use crate::train::worker::{EVAL_BATCH, Waker};

/// Capsules listed in an inspection.
pub const TOP_CAPSULES: usize = 10;

/// Requests to the inspection worker.
#[derive(Debug, Clone)]
pub enum InspectCommand {
    /// Use this (dense) model from now on; the slider returns to 0.
    SetModel(Box<CapsNet>),
    /// Held-out digits to measure the slider's accuracy on.
    SetHeldOut(Box<Split>),
    /// Inspect one 28x28 (model-sized) image.
    Inspect(Vec<f32>),
    /// Prune the dense model to this global sparsity (exact, by magnitude) and evaluate it.
    SetSparsity(f64),
    /// Reconstruct the last inspected digit with the winning capsule's dimensions moved by
    /// these offsets.
    Perturb(Vec<f32>),
    /// Load a model file (dense or compact) and use it.
    Load(std::path::PathBuf),
    /// Export the current (pruned) model, compacted, to a file and time dense vs compact.
    Export(std::path::PathBuf),
    /// End the thread.
    Shutdown,
}

/// The result of a slider move.
#[derive(Debug, Clone, PartialEq)]
pub struct SliderResult {
    /// Global sparsity reached.
    pub sparsity: f64,
    /// Accuracy on the held-out digits (None without held-out digits).
    pub accuracy: Option<f64>,
    /// Alive map (dense capsule indices).
    pub alive: Vec<bool>,
    /// Alive capsules K.
    pub alive_capsules: usize,
    /// Types with an alive capsule.
    pub alive_types: usize,
    /// Time from request to result, ms.
    pub elapsed_ms: f64,
}

/// What the capsule map needs to know about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Capsule types T.
    pub types: usize,
    /// Grid height.
    pub grid_h: usize,
    /// Grid width.
    pub grid_w: usize,
    /// Alive map (dense indices).
    pub alive: Vec<bool>,
    /// |W_i| per dense capsule index (0 for removed capsules).
    pub w_norms: Vec<f32>,
    /// Facts stored with the model.
    pub info: crate::export::ModelInfo,
}

fn summary(model: &CapsNet, info: crate::export::ModelInfo) -> ModelSummary {
    let g = model.geometry();
    let map = survival(model).map;
    let w = HostTensor::from_tensor(model.digit_weight.val());
    let row = w.values.len() / model.capsules().max(1);
    let mut w_norms = vec![0.0; map.alive.len()];
    for (k, i) in model.capsule_indices().into_iter().enumerate() {
        if let Some(n) = w_norms.get_mut(i) {
            *n = w.values[k * row..(k + 1) * row]
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt();
        }
    }
    ModelSummary {
        types: model.config.types,
        grid_h: g.grid_h,
        grid_w: g.grid_w,
        alive: map.alive,
        w_norms,
        info,
    }
}

/// Answers of the inspection worker.
#[derive(Debug, Clone)]
pub enum InspectEvent {
    /// A digit was inspected (with the current pruning).
    Inspected(Box<DigitInspection>),
    /// The slider's pruning is applied.
    Pruned(SliderResult),
    /// A perturbed reconstruction.
    Reconstruction(Vec<f32>),
    /// A model is in use (after `SetModel` or `Load`).
    ModelReady(Box<ModelSummary>),
    /// The current model was exported.
    Exported {
        /// The file.
        path: std::path::PathBuf,
        /// Its size in bytes.
        bytes: u64,
        /// Batch-32 inference of the dense (masked) model, ms.
        dense_ms: f64,
        /// Batch-32 inference of the compact model, ms.
        compact_ms: f64,
    },
    /// Something failed.
    Failed(String),
}

/// Handle to the inspection worker thread (named `sparsecaps-inspect`).
pub type Inspector = WorkerHandle<InspectCommand, InspectEvent>;

impl WorkerHandle<InspectCommand, InspectEvent> {
    /// Starts the inspection worker on `device`.
    pub fn spawn(device: Device, waker: Option<Waker>) -> std::io::Result<Self> {
        WorkerHandle::start(
            "sparsecaps-inspect",
            (64, 64),
            InspectCommand::Shutdown,
            move |commands, events| State::new(device).serve(&commands, &events, waker.as_ref()),
        )
    }
}

struct State {
    device: Device,
    dense: Option<CapsNet>,
    current: Option<CapsNet>,
    held_out: Option<Split>,
    last_digit: Option<(Vec<f32>, usize)>,
    order: Option<MagnitudeOrder>,
}

impl State {
    fn new(device: Device) -> Self {
        Self {
            device,
            dense: None,
            current: None,
            held_out: None,
            last_digit: None,
            order: None,
        }
    }

    fn serve(
        mut self,
        commands: &Receiver<InspectCommand>,
        events: &SyncSender<InspectEvent>,
        waker: Option<&Waker>,
    ) {
        while let Ok(first) = commands.recv() {
            // Only the latest slider position and the latest digit matter: coalesce.
            let mut batch = vec![first];
            loop {
                match commands.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let last_sparsity = batch
                .iter()
                .rposition(|c| matches!(c, InspectCommand::SetSparsity(_)));
            let last_inspect = batch
                .iter()
                .rposition(|c| matches!(c, InspectCommand::Inspect(_)));
            for (i, cmd) in batch.into_iter().enumerate() {
                let answer = match cmd {
                    InspectCommand::Shutdown => return,
                    InspectCommand::SetSparsity(_) if Some(i) != last_sparsity => None,
                    InspectCommand::Inspect(_) if Some(i) != last_inspect => None,
                    cmd => self.handle(cmd),
                };
                if let Some(a) = answer {
                    if events.send(a).is_err() {
                        return;
                    }
                    if let Some(w) = waker {
                        w();
                    }
                }
            }
        }
    }

    fn handle(&mut self, cmd: InspectCommand) -> Option<InspectEvent> {
        match cmd {
            InspectCommand::SetModel(m) => Some(self.use_model(*m, crate::export::ModelInfo::default())),
            InspectCommand::Load(path) => match crate::export::load_model(&path, &self.device) {
                Ok((m, info)) => Some(self.use_model(m, info)),
                Err(e) => Some(InspectEvent::Failed(e.to_string())),
            },
            InspectCommand::Export(path) => Some(self.export(&path)),
            InspectCommand::SetHeldOut(s) => {
                self.held_out = Some(*s);
                None
            }
            InspectCommand::Inspect(pixels) => {
                let Some(model) = &self.current else {
                    return Some(InspectEvent::Failed("no model loaded".into()));
                };
                let c = &model.config;
                if pixels.len() != c.pixels() {
                    return Some(InspectEvent::Failed(format!(
                        "image has {} values, the model takes {}",
                        pixels.len(),
                        c.pixels()
                    )));
                }
                let r = inspect_digit(model, &pixels, TOP_CAPSULES, &self.device);
                self.last_digit = Some((pixels, r.prediction));
                Some(InspectEvent::Inspected(Box::new(r)))
            }
            InspectCommand::SetSparsity(s) => Some(self.prune(s)),
            InspectCommand::Perturb(delta) => self.perturb(&delta),
            InspectCommand::Shutdown => None,
        }
    }

    fn use_model(&mut self, model: CapsNet, info: crate::export::ModelInfo) -> InspectEvent {
        let s = summary(&model, info);
        self.order = Some(MagnitudeOrder::new(&model));
        self.current = Some(model.clone());
        self.dense = Some(model);
        InspectEvent::ModelReady(Box::new(s))
    }

    fn export(&self, path: &std::path::Path) -> InspectEvent {
        let Some(model) = &self.current else {
            return InspectEvent::Failed("no model loaded".into());
        };
        let small = match compact(model) {
            Ok(m) => m,
            Err(e) => return InspectEvent::Failed(e.to_string()),
        };
        let mut info = crate::export::ModelInfo::default();
        let surv = survival(&small);
        info.sparsity = Some(surv.dense_sparsity(&small.config));
        if let Err(e) = crate::export::save_model(&small, &info, path) {
            return InspectEvent::Failed(e.to_string());
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

    fn prune(&mut self, sparsity: f64) -> InspectEvent {
        let started = Instant::now();
        let Some(dense) = &self.dense else {
            return InspectEvent::Failed("no model loaded".into());
        };
        let order = self.order.get_or_insert_with(|| MagnitudeOrder::new(dense));
        let masks = order.masks(sparsity);
        let pruned = apply_masks(dense.clone(), &masks.to_device(&self.device));
        // evaluate the compact form: same outputs, less work
        let fast = compact(&pruned).unwrap_or_else(|_| pruned.clone());
        let accuracy = self
            .held_out
            .as_ref()
            .map(|h| evaluate(&fast, h, EVAL_BATCH, &self.device).accuracy);
        let map = survival(&pruned).map;
        self.current = Some(fast);
        InspectEvent::Pruned(SliderResult {
            sparsity: masks.sparsity(),
            accuracy,
            alive_capsules: map.alive_count(),
            alive_types: map.alive_types(),
            alive: map.alive,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        })
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
mod tests {
    use super::*;
    use crate::data::{DataSource, Dataset};

    #[test]
    fn inspects_prunes_and_perturbs_in_the_background() {
        let dev = Device::flex();
        let net = CapsNet::init(&crate::model::Preset::Tiny.config(), 2, &dev).unwrap();
        let mut data = Dataset::load(&DataSource::Mnist).unwrap();
        data.test.truncate(64);
        let digit = data.test.image_f32(0);
        let w = Inspector::spawn(dev, None).unwrap();
        assert!(w.send(InspectCommand::Inspect(digit.clone())));
        assert!(
            matches!(w.recv_event(), Some(InspectEvent::Failed(_))),
            "no model yet"
        );
        w.send(InspectCommand::SetModel(Box::new(net)));
        assert!(matches!(w.recv_event(), Some(InspectEvent::ModelReady(_))));
        w.send(InspectCommand::SetHeldOut(Box::new(data.test.clone())));
        w.send(InspectCommand::Inspect(digit.clone()));
        let Some(InspectEvent::Inspected(r)) = w.recv_event() else {
            panic!("no inspection")
        };
        assert_eq!(r.lengths.len(), 10);
        // several slider moves at once: only the last is answered
        for s in [0.1, 0.5, 0.9] {
            w.send(InspectCommand::SetSparsity(s));
        }
        let mut last = None;
        while let Some(e) = w.recv_event() {
            if let InspectEvent::Pruned(p) = e {
                let done = (p.sparsity - 0.9).abs() < 1e-4;
                last = Some(p);
                if done {
                    break;
                }
            }
        }
        let p = last.unwrap();
        assert!((p.sparsity - 0.9).abs() < 1e-4);
        assert!(p.accuracy.is_some());
        assert_eq!(p.alive.len(), 288);
        w.send(InspectCommand::Inspect(digit));
        assert!(matches!(w.recv_event(), Some(InspectEvent::Inspected(_))));
        w.send(InspectCommand::Perturb(vec![0.25; 16]));
        let Some(InspectEvent::Reconstruction(img)) = w.recv_event() else {
            panic!("no reconstruction")
        };
        assert_eq!(img.len(), 784);
    }
}
