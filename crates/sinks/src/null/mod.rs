//! `null`: accepts and discards every record (benchmarks, dry runs).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::{BuildContext, BuildError, PluginConfig, Record, Sink, SinkError};

/// Discards records; each counts as delivered.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NullSinkConfig {}

/// The null sink.
pub struct NullSink;

impl PluginConfig for NullSinkConfig {
    const TYPE: &'static str = "null";
    const SUMMARY: &'static str = "Discard records (benchmarks, dry runs)";
    const EXAMPLE: &'static str = "type: \"null\"\n";
    type Output = dyn Sink;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(NullSink))
    }
}

weir_core::register_plugin!(NullSinkConfig);

#[async_trait]
impl Sink for NullSink {
    async fn write(&self, _records: &[Record]) -> Result<(), SinkError> {
        Ok(())
    }
}
