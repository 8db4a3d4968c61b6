//! Weir's engine: runs one pipeline as bounded channels of batches between a source, transform
//! stages, a fan-out and one driver per sink (batching, concurrent writes, retries with backoff
//! and jitter, the per-record error policy, dead letters), with an error budget and a graceful
//! shutdown bounded by a deadline. Pipelines are built from YAML by `weir-runtime`, or in code
//! with [`Pipeline::builder`].

pub mod budget;
pub mod dead_letter;
pub mod handle;
pub mod metrics;
pub mod retry;
pub mod sink_driver;
pub mod stages;
pub mod topology;

pub use handle::{EngineStatus, Phase, PipelineHandle};
pub use metrics::MetricsRegistry;
pub use topology::{
    BuilderError, FailureKind, Pipeline, PipelineBuilder, PipelineFailed, PipelineParts,
};
