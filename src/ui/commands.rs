//! What panels send and receive: the [`Commands`] handle to the worker threads and the
//! [`AppEvent`]s the app hands every panel. Panels depend on this and on the message types,
//! never on the app or the workers, so each can be tested with [`RecordedCommands`].

use crate::inspect::{InspectCommand, InspectEvent};
use crate::threads::SendError;
use crate::train::{Command, Event};

/// The way panels reach the trainer and the inspection worker. Sends never wait: a full
/// queue or a stopped worker comes back as an error for the panel to show.
pub trait Commands {
    /// Queues a command for the trainer thread.
    fn train(&mut self, command: Command) -> Result<(), SendError>;
    /// Queues a command for the inspection worker.
    fn inspect(&mut self, command: InspectCommand) -> Result<(), SendError>;
    /// Asks the inspection worker to stop "Keep"'s fine-tuning after the current step.
    fn cancel_keep(&mut self);
}

/// An event from one of the worker threads, as the app hands it to every panel.
#[derive(Debug, Clone)]
pub enum AppEvent {
    /// From the trainer.
    Train(Event),
    /// From the inspection worker.
    Inspect(InspectEvent),
}

/// A [`Commands`] that records what it is sent, for panel tests without threads; with
/// `refuse` set, every send fails as a busy worker would.
#[derive(Debug, Default)]
pub struct RecordedCommands {
    /// Trainer commands, oldest first.
    pub train: Vec<Command>,
    /// Inspection commands, oldest first.
    pub inspect: Vec<InspectCommand>,
    /// How often "Keep" was cancelled.
    pub cancels: usize,
    /// Refuse every send with [`SendError::Busy`].
    pub refuse: bool,
}

impl RecordedCommands {
    fn accept<C>(refuse: bool, queue: &mut Vec<C>, c: C, what: &'static str) -> Result<(), SendError> {
        if refuse {
            return Err(SendError::Busy(what));
        }
        queue.push(c);
        Ok(())
    }
}

impl Commands for RecordedCommands {
    fn train(&mut self, command: Command) -> Result<(), SendError> {
        Self::accept(self.refuse, &mut self.train, command, "trainer")
    }

    fn inspect(&mut self, command: InspectCommand) -> Result<(), SendError> {
        Self::accept(self.refuse, &mut self.inspect, command, "inspector")
    }

    fn cancel_keep(&mut self) {
        self.cancels += 1;
    }
}
