//! Weir core: records, acknowledgements, offset tracking, plugin traits, the plugin registry,
//! pipeline configuration, the record view that filters and templates share, and test helpers
//! for plugin authors.
#![warn(missing_docs)]

pub mod ack;
pub mod config;
pub mod event;
pub mod json;
pub mod offsets;
pub mod path;
pub mod plugin;
pub mod record;
pub mod redact;
pub mod registry;
pub mod telemetry;
pub mod template;
pub mod testing;
pub mod time;

pub use ack::{Ack, AckReceiver, AckStatus, Acker, BatchAck};
pub use config::{ConfigError, ConfigErrors, HumanDuration, OnError, PipelineSpec};
pub use offsets::{OffsetTracker, PartitionOffsets};
pub use plugin::{
    Closed, ComponentId, Flow, PluginKind, RecordOutcome, Sink, SinkError, Source, SourceContext,
    SourceError, Transform, TransformError,
};
pub use record::{Batch, Header, Meta, Origin, Record, Value};
pub use registry::{BuildContext, BuildError, PluginConfig, Registry};

#[doc(hidden)]
pub use inventory;
