//! Weir's runtime: turns pipeline specs (YAML, with `${VAR}` and located errors) into running
//! pipelines: plugins from the registry, converters from `format:` and `schema_registry:`, the
//! schema catalogue; runs them together; and generates the YAML reference and the JSON Schema
//! from the plugin registry.

pub mod build;
pub mod docs;
pub mod formats;
pub mod redrive;
pub mod store;
pub mod supervisor;

pub use build::{RunError, Runtime, build, builtin_registry};
pub use weir_engine::{FailureKind, MetricsRegistry, Pipeline, PipelineFailed};
