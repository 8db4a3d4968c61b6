//! `stdin`: reads one JSON document per line from standard input until EOF.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::{BuildContext, BuildError, PluginConfig, Source, SourceContext, SourceError};

use crate::lines::{LineReader, read_to_end};

/// Reads standard input, one JSON document per line; a line that is not JSON becomes a string
/// value. The pipeline ends after EOF once everything is delivered. Records carry topic `stdin`,
/// partition 0 and the line number as offset.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    /// Most lines per batch sent downstream.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
}

fn default_batch() -> usize {
    500
}

/// The stdin source.
pub struct StdinSource {
    max_batch: usize,
}

impl PluginConfig for StdinSourceConfig {
    const TYPE: &'static str = "stdin";
    const SUMMARY: &'static str =
        "Read JSON lines from standard input (non-JSON lines become strings)";
    const EXAMPLE: &'static str = "type: stdin\n";
    type Output = dyn Source;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if self.max_batch == 0 {
            return Err(BuildError::at("max_batch", "must be at least 1"));
        }
        Ok(Box::new(StdinSource {
            max_batch: self.max_batch,
        }))
    }
}

weir_core::register_plugin!(StdinSourceConfig);

#[async_trait]
impl Source for StdinSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let mut reader = LineReader::new(tokio::io::stdin(), 0, 0);
        let topic: Arc<str> = "stdin".into();
        read_to_end(&mut reader, &cx, &topic, self.max_batch).await
    }
}
