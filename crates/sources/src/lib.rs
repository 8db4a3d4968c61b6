//! Weir's built-in sources: `stdin`, `file`, `generator`, (feature `kafka`) `kafka` and (feature
//! `redis`) `redis` (Redis Streams consumer groups).

pub mod file;
pub mod generator;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
#[cfg(feature = "redis")]
pub mod redis;
pub mod stdin;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
