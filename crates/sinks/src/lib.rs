//! Weir's built-in sinks: `stdout`, `log`, `file`, `null`, (feature `kafka`) `kafka`,
//! (feature `http`) `http` and (feature `redis`) `redis` (Redis Streams).

pub mod file;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;
pub mod ndjson;
pub mod null;
#[cfg(feature = "redis")]
pub mod redis;
pub mod stdout;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
