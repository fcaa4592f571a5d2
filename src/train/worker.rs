//! The trainer thread: it owns the model and the optimiser, takes [`Command`]s and sends
//! [`Event`]s over bounded channels.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};

use super::messages::{Command, Event};
use crate::threads::{CancelFlag, WorkerHandle};

/// Capacity of the command channel.
pub const COMMAND_CAPACITY: usize = 16;
/// Capacity of the event channel; progress events are dropped when it is full.
pub const EVENT_CAPACITY: usize = 256;
/// Batch size used for evaluation.
pub const EVAL_BATCH: usize = 250;
/// Images per evaluation batch on a GPU, where larger batches keep it busy.
pub const GPU_EVAL_BATCH: usize = 500;

/// Callback run after each event is sent (the app passes `ctx.request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Handle to the trainer thread (named `sparsecaps-trainer`).
pub type Trainer = WorkerHandle<Command, Event>;

impl WorkerHandle<Command, Event> {
    /// Starts the trainer thread.
    pub fn spawn(waker: Option<Waker>) -> std::io::Result<Self> {
        WorkerHandle::start(
            "sparsecaps-trainer",
            (COMMAND_CAPACITY, EVENT_CAPACITY),
            Command::Shutdown,
            move |commands, events, cancel| worker_loop(&commands, &Emitter { tx: events, waker }, &cancel),
        )
    }
}

/// The sending side of the event channel.
pub(super) struct Emitter {
    tx: SyncSender<Event>,
    waker: Option<Waker>,
}

impl Emitter {
    /// Sends an event that must arrive (blocks while the queue is full).
    pub(super) fn send(&self, event: Event) {
        let _ = self.tx.send(event);
        self.wake();
    }

    /// Sends a progress event, dropping it if the queue is full.
    pub(super) fn progress(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }
}

fn worker_loop(commands: &Receiver<Command>, emit: &Emitter, cancel: &CancelFlag) {
    while let Ok(cmd) = commands.recv() {
        let req = match cmd {
            Command::Start(req) => *req,
            // reading the checkpoint (model and Adam's moments) is the trainer's work, not
            // the UI thread's
            Command::ResumeRun { dir, epochs } => {
                match super::resume::resume_request(&dir, |_, total| (epochs > total).then_some(epochs)) {
                    Ok(req) => req,
                    Err(e) => {
                        emit.send(Event::Failed(e));
                        continue;
                    }
                }
            }
            Command::Shutdown => break,
            Command::Pause | Command::Resume | Command::Stop | Command::SetLearningRate(_) => continue,
        };
        let mut run = Run::new(commands, emit, cancel);
        match crate::threads::catch_panic(|| run.train(&req)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => emit.send(Event::Failed(e)),
            Err(panic) => emit.send(Event::Failed(super::messages::TrainError::Panicked(panic))),
        }
        // closing the app may have cancelled the run's dataset load: no queued run starts
        if run.shutdown || cancel.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
}

/// What the command queue says to do next.
pub(super) enum Flow {
    Continue,
    Stop,
}

/// A run in progress: the command queue, the event sender, the base learning rate (a
/// command may change it) and whether the thread is to shut down afterwards. The run loop
/// itself is in [`super::run`].
pub(super) struct Run<'a> {
    commands: &'a Receiver<Command>,
    /// Raised when the app closes: the run stops at its next poll even if the shutdown
    /// command found the queue full.
    cancel: &'a CancelFlag,
    pub(super) emit: &'a Emitter,
    pub(super) lr: f64,
    shutdown: bool,
}

impl<'a> Run<'a> {
    /// The flag raised when the app closes, for long work (loading the dataset) to stop
    /// early.
    pub(super) fn closing_flag(&self) -> &'a CancelFlag {
        self.cancel
    }

    fn new(commands: &'a Receiver<Command>, emit: &'a Emitter, cancel: &'a CancelFlag) -> Self {
        Self {
            commands,
            cancel,
            emit,
            lr: 0.0,
            shutdown: false,
        }
    }

    fn handle(&mut self, cmd: Command, paused: &mut bool) -> Flow {
        match cmd {
            Command::Pause if !*paused => {
                *paused = true;
                self.emit.send(Event::Paused);
            }
            Command::Resume if *paused => {
                *paused = false;
                self.emit.send(Event::Resumed);
            }
            Command::Stop => return Flow::Stop,
            Command::Shutdown => {
                self.shutdown = true;
                return Flow::Stop;
            }
            Command::SetLearningRate(lr) if lr.is_finite() && lr > 0.0 => self.lr = lr,
            _ => {}
        }
        Flow::Continue
    }

    /// Handles queued commands; blocks while paused.
    pub(super) fn poll(&mut self) -> Flow {
        let mut paused = false;
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                self.shutdown = true;
                return Flow::Stop;
            }
            let cmd = if paused {
                match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => return Flow::Stop,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty) => return Flow::Continue,
                    Err(TryRecvError::Disconnected) => return Flow::Stop,
                }
            };
            if let Flow::Stop = self.handle(cmd, &mut paused) {
                return Flow::Stop;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use crate::train::TrainRequest;

    #[test]
    fn the_cancel_flag_ends_a_run_and_the_thread_without_a_shutdown_command() {
        let trainer = Trainer::spawn(None).unwrap();
        let req = TrainRequest {
            preset: Preset::Tiny,
            batch: 16,
            epochs: 1_000,
            limit_train: Some(2_000),
            limit_test: Some(50),
            readback_every: 1,
            device: crate::device::DeviceChoice::Cpu,
            ..TrainRequest::default()
        };
        trainer.send(Command::Start(Box::new(req))).unwrap();
        loop {
            match trainer.recv_event() {
                Some(Event::Step(_)) => break,
                Some(Event::Failed(e)) => panic!("{e}"),
                Some(_) => {}
                None => panic!("the trainer ended before its first step"),
            }
        }
        // what closing the app raises when the command queue is full
        trainer.cancel();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while trainer.recv_event().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the run went on after the flag"
            );
        }
    }
}
