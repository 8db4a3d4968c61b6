//! Weir's built-in sources: `stdin`, `file` and `generator`.

pub mod file;
pub mod generator;
pub mod lines;
pub mod stdin;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
