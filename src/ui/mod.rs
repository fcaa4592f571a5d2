//! The app's panels, one file each. Panels read and change [`crate::app::AppState`] and queue
//! commands; they never run the network.

pub mod canvas;
pub mod capsule_map;
pub mod curves;
pub mod inspection;
pub mod pruning;
pub mod routing;
pub mod training;
