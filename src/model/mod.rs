//! The CapsNet of *Towards Efficient Capsule Networks*: configuration, module, routing,
//! losses and parameter conversion.

pub mod backbone;
pub mod backbone_plan;
pub mod buffers;
pub mod capsnet;
pub mod config;
pub mod fast_bn;
pub mod fast_conv;
pub mod loss;
mod par_fill;
pub mod params;
pub mod primary_conv;
pub mod routing;
mod unroll;
pub mod validate;

pub use backbone::{Backbone, BackboneKind, BackbonePlan};
pub use capsnet::{CapsNet, CapsOutput, Compaction, LossParts};
pub use config::{CapsNetConfig, ConfigError, Geometry, Preset};
pub use params::{HostTensor, PRUNABLE, ParamsError};
pub use primary_conv::PrimaryConv;
