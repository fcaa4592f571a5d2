//! sparsecaps: a laboratory for efficient (pruned) Capsule Networks.

pub mod app;
pub mod cli;
pub mod data;
pub mod device;
pub mod errors;
pub mod export;
pub mod fsio;
pub mod inspect;
pub mod model;
pub mod prune;
pub mod rng;
pub mod train;
pub mod ui;
