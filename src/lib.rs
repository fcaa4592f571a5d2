//! sparsecaps: a laboratory for efficient (pruned) Capsule Networks.

/// Serialises a type as its `Display` text and reads it back through `FromStr` (names such
/// as `mnist`, `small` or `cpu` in settings files, instead of enum tags).
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

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
pub mod threads;
pub mod train;
pub mod ui;
