//! Weir's runner as a library: builds pipelines from YAML or code and runs them with bounded
//! channels, batching, fan-out, retries with backoff and jitter, dead letters, an error budget
//! and graceful shutdown. The `weir` binary is a thin CLI over this.

pub mod budget;
pub mod dead_letter;
pub mod docs;
pub mod formats;
pub mod metrics;
pub mod retry;
pub mod runtime;
pub mod sink_driver;
pub mod stages;
pub mod topology;

pub use metrics::MetricsRegistry;
pub use runtime::{RunError, Runtime, build, builtin_registry};
pub use topology::{Pipeline, PipelineBuilder, PipelineFailed};
