//! Weir's built-in transforms: `filter` (EventBridge event patterns), `fields` (include, exclude,
//! rename, mask, hash), `insert`, `template` (Pipes input templates), `jq` and (feature `http`)
//! `http` (Pipes enrichment).

pub mod fields;
pub mod filter;
#[cfg(feature = "http")]
pub mod http;
pub mod insert;
pub mod jq;
pub mod template;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
