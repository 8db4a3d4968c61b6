//! Weir's built-in sinks: `stdout`, `log`, `file`, `null` and (feature `kafka`) `kafka`.

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;
pub mod ndjson;
pub mod null;
pub mod stdout;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
