//! Weir's built-in transforms: `filter` (EventBridge event patterns), `fields` (include, exclude,
//! rename, mask, hash), `insert`, `template` (Pipes input templates), `jq`, (feature `http`)
//! `http` (Pipes enrichment) and (feature `redis`) `redis` (a lookup in Redis with a cache).

#[cfg(any(feature = "http", feature = "redis"))]
mod enrich;
pub mod fields;
pub mod filter;
#[cfg(feature = "http")]
pub mod http;
pub mod insert;
pub mod jq;
#[cfg(feature = "redis")]
pub mod redis;
pub mod template;

/// Referenced by the runner so the linker keeps this crate's plugin registrations.
pub fn link() {}
