//! The pipeline file's shape: pipelines, components, the runner options taken off each component
//! before the rest goes to the plugin's own config struct, and the rules for names. The parser
//! that fills these from YAML is `parse.rs`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::error::SourceFile;
use super::format::{Formats, SchemaRegistryConfig};
use super::node::{Location, Node};
use crate::plugin::PluginKind;

/// What to do with a record that failed at a stage after retries (or at once, for fatal errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Send it to the pipeline's `dlq` sink with error headers; done once the DLQ write succeeds.
    Dlq,
    /// Log, count and drop it (counts as done: the source moves past it).
    Drop,
    /// Stop the pipeline with an error; the record is not committed and is replayed on restart.
    Stop,
    /// Pass the record on unchanged (transforms only: enrichment that may fail softly).
    Keep,
}

/// Batching towards a sink: a batch is written when any limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchOptions {
    /// Most records in one write.
    pub max_records: usize,
    /// Most bytes (approximate, value + key + headers) in one write.
    pub max_bytes: usize,
    /// Longest a partial batch waits for more records before it is written.
    pub max_wait: HumanDuration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_records: 500,
            max_bytes: 4 * 1024 * 1024,
            max_wait: HumanDuration::from_millis(100),
        }
    }
}

/// Retries of retriable failures, with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOptions {
    /// Attempts in all, the first included; `-1` retries forever (the default: a sink that is
    /// down stalls the pipeline by backpressure instead of losing or dead-lettering records;
    /// a `dlq:` sink defaults to 5, then the pipeline stops).
    pub max_attempts: i64,
    /// Backoff before the first retry.
    pub initial_backoff: HumanDuration,
    /// Backoff never grows beyond this.
    pub max_backoff: HumanDuration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: -1,
            initial_backoff: HumanDuration::from_millis(100),
            max_backoff: HumanDuration::from_secs(30),
        }
    }
}

impl RetryOptions {
    /// Attempts of a `dlq:` sink without `retry:` of its own. A dead-letter queue that cannot
    /// take records (its brokers unreachable) must not stall the pipeline for ever without a
    /// word: after these attempts the pipeline stops, its failed records uncommitted.
    pub const DLQ_MAX_ATTEMPTS: i64 = 5;

    /// The retry options of a `dlq:` sink that sets none: [`RetryOptions::DLQ_MAX_ATTEMPTS`]
    /// attempts with the default backoff.
    pub fn dlq_default() -> Self {
        RetryOptions {
            max_attempts: Self::DLQ_MAX_ATTEMPTS,
            ..RetryOptions::default()
        }
    }
}

/// Stop the pipeline when too many records fail.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBudget {
    /// Largest share (0.0–1.0) of failed records tolerated within `window`.
    pub max_failed_ratio: f64,
    /// The sliding window the share is measured over.
    #[serde(default = "default_budget_window")]
    pub window: HumanDuration,
    /// Records that must be seen in the window before the ratio is judged.
    #[serde(default = "default_budget_min")]
    pub min_records: u64,
}

fn default_budget_window() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_budget_min() -> u64 {
    100
}

/// Runner options of one component.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StageOptions {
    /// Batching (sinks).
    pub batch: BatchOptions,
    /// Retries (transforms and sinks).
    pub retry: RetryOptions,
    /// Concurrent writes (sinks); `None` means the sink's own default
    /// ([`crate::Sink::default_max_in_flight`]).
    pub max_in_flight: Option<usize>,
    /// Failure policy; `None` means the pipeline default (`dlq` with a DLQ, else `stop`).
    pub on_error: Option<OnError>,
}

/// One component as written: its plugin type, name, runner options and remaining plugin options.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// Source, transform or sink.
    pub kind: PluginKind,
    /// The `type:`.
    pub type_name: String,
    /// The `name:`, or type plus index.
    pub name: String,
    /// YAML path of the component mapping.
    pub path: String,
    /// Location of the component mapping.
    pub location: Location,
    /// Location of the `type:` value.
    pub type_location: Location,
    /// The plugin's own options (a mapping without the runner keys).
    pub config: Node,
    /// Runner options.
    pub options: StageOptions,
    /// A sink's own transforms.
    pub transforms: Vec<ComponentSpec>,
    /// Key and value converters (`format:`, sources and sinks).
    pub format: Option<Formats>,
    /// Where `format:` is written.
    pub format_location: Option<Location>,
    /// True for the pipeline's `dlq:` sink.
    pub is_dlq: bool,
}

impl ComponentSpec {
    /// `source`, `transform`, `sink`, or `dlq` for the pipeline's dead-letter sink: the
    /// `component_kind` label of its metrics.
    pub fn component_kind(&self) -> &'static str {
        if self.is_dlq { "dlq" } else { self.kind.noun() }
    }
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Batches each internal channel holds; with the batch sizes this bounds memory.
    pub buffer_batches: usize,
    /// How long shutdown may take (flush, in-flight writes, acks) before work is abandoned.
    pub shutdown_timeout: HumanDuration,
    /// Run each sink's health check before starting.
    pub healthcheck: bool,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            buffer_batches: 8,
            shutdown_timeout: HumanDuration::from_secs(30),
            healthcheck: true,
        }
    }
}

/// One pipeline as written.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Its name (the key under `pipelines:`).
    pub name: Arc<str>,
    /// The pipeline's definition after `${VAR}` expansion, as compact JSON: two specs with the
    /// same text define the same pipeline (a reload leaves it untouched).
    pub canonical: String,
    /// Where it is defined.
    pub file: SourceFile,
    /// YAML path (`pipelines.<name>`).
    pub path: String,
    /// Location of its mapping.
    pub location: Location,
    /// The source.
    pub source: ComponentSpec,
    /// Transforms for every record, in order.
    pub transforms: Vec<ComponentSpec>,
    /// Sinks; every record goes to every sink.
    pub sinks: Vec<ComponentSpec>,
    /// Dead-letter sink.
    pub dlq: Option<ComponentSpec>,
    /// Stop past this failure share.
    pub error_budget: Option<ErrorBudget>,
    /// Settings.
    pub settings: PipelineSettings,
    /// The schema registry Avro converters use (the pipeline's own, else the file's).
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Where that `schema_registry:` is written, and its YAML path.
    pub schema_registry_at: Option<(Location, String)>,
}

impl PipelineSpec {
    /// The effective failure policy of a stage.
    pub fn on_error(&self, c: &ComponentSpec) -> OnError {
        c.options.on_error.unwrap_or(if self.dlq.is_some() {
            OnError::Dlq
        } else {
            OnError::Stop
        })
    }
}

pub(crate) const PIPELINE_KEYS: &[&str] = &[
    "source",
    "transforms",
    "sinks",
    "dlq",
    "error_budget",
    "settings",
    "schema_registry",
];
const SOURCE_RUNNER_KEYS: &[&str] = &["type", "name", "format"];
const TRANSFORM_RUNNER_KEYS: &[&str] = &["type", "name", "on_error", "retry"];
pub(crate) const SINK_RUNNER_KEYS: &[&str] = &[
    "type",
    "name",
    "transforms",
    "batch",
    "retry",
    "max_in_flight",
    "on_error",
    "format",
];
const DLQ_RUNNER_KEYS: &[&str] = &["type", "name", "batch", "retry", "max_in_flight"];

/// The longest pipeline or component name.
pub const MAX_NAME_LEN: usize = 128;

/// Why a pipeline or component name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("must be at most {MAX_NAME_LEN} characters")]
    TooLong,
    /// A character outside letters, digits, `-`, `_` and `.`.
    #[error("{name:?} has {found:?}; names use letters, digits, `-`, `_` and `.`")]
    Character {
        /// The name.
        name: String,
        /// The first character refused.
        found: char,
    },
    /// The name starts with `-`, `_` or `.`.
    #[error("{0:?} must start with a letter or digit")]
    Start(String),
}

/// Checks a pipeline or component name: names appear in URLs (`/v1/pipelines/{name}`), metric
/// labels, dead-letter headers and log lines, so they are 1 to 128 letters, digits, `-`, `_`
/// and `.`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameError::Character {
            name: name.to_owned(),
            found,
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError::Start(name.to_owned()));
    }
    Ok(())
}

/// Keys the runner takes off a component of this kind (everything else goes to the plugin).
pub fn runner_keys(kind: PluginKind, dlq: bool) -> &'static [&'static str] {
    match (kind, dlq) {
        (PluginKind::Source, _) => SOURCE_RUNNER_KEYS,
        (PluginKind::Transform, _) => TRANSFORM_RUNNER_KEYS,
        (PluginKind::Sink, false) => SINK_RUNNER_KEYS,
        (PluginKind::Sink, true) => DLQ_RUNNER_KEYS,
    }
}
