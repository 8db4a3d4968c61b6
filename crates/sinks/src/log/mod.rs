//! `log`: writes each record to the log (standard error) at a chosen level.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::{BuildContext, BuildError, PluginConfig, Record, Sink, SinkError};

use crate::ndjson::write_line;

/// Log level for records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    #[default]
    Info,
    /// warn
    Warn,
    /// error
    Error,
}

/// Logs every record (value, or the whole event with `envelope: true`) through the runner's
/// logger at `level`, with the pipeline and component as fields.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSinkConfig {
    /// Level to log at.
    #[serde(default)]
    pub level: Level,
    /// Log the whole event instead of just the value (default: false, and true for a `dlq:`, so
    /// dead letters keep their error headers).
    #[serde(default)]
    pub envelope: Option<bool>,
}

/// The log sink.
pub struct LogSink {
    level: Level,
    envelope: bool,
    pipeline: String,
    component: String,
}

impl PluginConfig for LogSinkConfig {
    const TYPE: &'static str = "log";
    const SUMMARY: &'static str = "Write records to the log at a chosen level";
    const EXAMPLE: &'static str = "type: log\nlevel: info\n";
    type Output = dyn Sink;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(LogSink {
            level: self.level,
            envelope: self.envelope.unwrap_or(cx.is_dlq),
            pipeline: cx.pipeline.to_string(),
            component: cx.component.to_string(),
        }))
    }
}

weir_core::register_plugin!(LogSinkConfig);

#[async_trait]
impl Sink for LogSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(512);
        for r in records {
            buf.clear();
            write_line(r, self.envelope, &mut buf);
            let line = String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf));
            let (p, c) = (&self.pipeline, &self.component);
            match self.level {
                Level::Trace => tracing::trace!(pipeline = %p, component = %c, record = %line),
                Level::Debug => tracing::debug!(pipeline = %p, component = %c, record = %line),
                Level::Info => tracing::info!(pipeline = %p, component = %c, record = %line),
                Level::Warn => tracing::warn!(pipeline = %p, component = %c, record = %line),
                Level::Error => tracing::error!(pipeline = %p, component = %c, record = %line),
            }
        }
        Ok(())
    }
}
