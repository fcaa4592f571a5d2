//! Training: the background trainer thread, its messages, evaluation and run files.

pub mod evaluate;
pub mod finetune;
pub mod messages;
pub mod metrics;
pub mod step;
pub mod worker;

pub use evaluate::{Evaluation, evaluate};
pub use messages::{Command, EpochMetrics, Event, Preset, StepReport, TrainRequest};
pub use worker::{Trainer, Waker};
pub mod bench;
pub mod plateau;
pub mod profile;
pub mod resume;
mod run;
pub mod schedule;
mod setup;
pub mod threshold;
