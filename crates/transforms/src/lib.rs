//! Weir's built-in transforms: `filter` (EventBridge event patterns), `fields` (include, exclude,
//! rename, mask, hash), `insert`, `template` (Pipes input templates) and `jq`.

pub mod fields;
pub mod filter;
pub mod insert;
pub mod jq;
pub mod template;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
