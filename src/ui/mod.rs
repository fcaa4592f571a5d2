//! The app's panels, one file each. Each panel owns its state, draws itself with
//! `ui(&mut self, ui, &mut dyn Commands)` and follows the workers through
//! `on_event(&mut self, &AppEvent)`; panels know the message types and the [`Commands`]
//! handle, never the app or the worker threads, and never run the network.

pub mod canvas;
pub mod capsule_map;
pub mod commands;
pub mod curves;
pub mod dialogs;
pub mod inspection;
pub mod pruning;
pub mod routing;
pub mod training;

pub use canvas::CanvasPanel;
pub use capsule_map::CapsuleMapPanel;
pub use commands::{AppEvent, Commands, RecordedCommands};
pub use curves::CurvesPanel;
pub use inspection::InspectionPanel;
pub use pruning::PrunePanel;
pub use training::TrainingPanel;
