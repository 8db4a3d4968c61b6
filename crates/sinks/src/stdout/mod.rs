//! `stdout`: one JSON document per line on standard output (and nothing else ever goes there).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use weir_core::{BuildContext, BuildError, PluginConfig, Record, Sink, SinkError};

use crate::ndjson::write_line;

/// Writes each record as one JSON line on standard output: the value, or with `envelope: true`
/// the whole event `{topic, partition, offset, timestamp, key, headers, value}`. Logs go to
/// standard error, so standard output carries only records.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Write the whole event instead of just the value.
    #[serde(default)]
    pub envelope: bool,
}

/// The stdout sink.
pub struct StdoutSink {
    envelope: bool,
    out: Mutex<tokio::io::Stdout>,
}

impl PluginConfig for StdoutSinkConfig {
    const TYPE: &'static str = "stdout";
    const SUMMARY: &'static str = "Write JSON lines to standard output";
    const EXAMPLE: &'static str = "type: stdout\nenvelope: false\n";
    type Output = dyn Sink;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(StdoutSink {
            envelope: self.envelope,
            out: Mutex::new(tokio::io::stdout()),
        }))
    }
}

weir_core::register_plugin!(StdoutSinkConfig);

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 320);
        for r in records {
            write_line(r, self.envelope, &mut buf);
        }
        let mut out = self.out.lock().await;
        // A closed pipe (`weir run … | head`) is not worth retrying.
        out.write_all(&buf)
            .await
            .map_err(|e| SinkError::Fatal(format!("cannot write to stdout: {e}")))?;
        out.flush()
            .await
            .map_err(|e| SinkError::Fatal(format!("cannot flush stdout: {e}")))
    }
}
