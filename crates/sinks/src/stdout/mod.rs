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
///
/// When standard output is closed (`weir run … | head -3`), the pipeline stops as command-line
/// tools do on a broken pipe: the records not written stay uncommitted and nothing is
/// dead-lettered.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Write the whole event instead of just the value (default: false, and true for a `dlq:`,
    /// so dead letters keep their error headers).
    #[serde(default)]
    pub envelope: Option<bool>,
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
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(StdoutSink {
            envelope: self.envelope.unwrap_or(cx.is_dlq),
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
        let written = match out.write_all(&buf).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // `weir run … | head`: the reader is gone, the records are not at fault.
                SinkError::OutputClosed("standard output was closed".into())
            } else {
                SinkError::retriable(format!("cannot write to stdout: {e}"))
            }
        })
    }
}
