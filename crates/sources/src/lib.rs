//! Weir's built-in sources: `stdin`, `file`, `generator` and (feature `kafka`) `kafka`.

pub mod file;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod stdin;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
