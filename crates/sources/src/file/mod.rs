//! `file`: reads one JSON document per line from a file, optionally following appends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::BufReader;
use weir_core::{
    BuildContext, BuildError, HumanDuration, PluginConfig, Source, SourceContext, SourceError,
};

use crate::lines::{LinesEnd, read_lines};

/// Reads a file of JSON lines (non-JSON lines become strings). Without `follow` the pipeline ends
/// after the last line is delivered; with `follow` it waits for appended lines like `tail -f`.
/// Records carry the path as topic, partition 0 and the line number as offset.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read.
    pub path: PathBuf,
    /// Keep reading lines appended after the end is reached.
    #[serde(default)]
    pub follow: bool,
    /// With `follow`, how often to look for new lines.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// Most lines per batch sent downstream.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
}

fn default_poll() -> HumanDuration {
    HumanDuration::from_millis(250)
}
fn default_batch() -> usize {
    500
}

/// The file source.
pub struct FileSource {
    config: FileSourceConfig,
}

impl PluginConfig for FileSourceConfig {
    const TYPE: &'static str = "file";
    const SUMMARY: &'static str = "Read JSON lines from a file, optionally following appends";
    const EXAMPLE: &'static str = "type: file\npath: input/orders.ndjson\nfollow: false\n";
    type Output = dyn Source;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if self.max_batch == 0 {
            return Err(BuildError::at("max_batch", "must be at least 1"));
        }
        Ok(Box::new(FileSource { config: self }))
    }
}

weir_core::register_plugin!(FileSourceConfig);

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let c = self.config;
        let file = tokio::fs::File::open(&c.path)
            .await
            .map_err(|e| SourceError::Read(format!("cannot open {}: {e}", c.path.display())))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let topic: Arc<str> = c.path.display().to_string().into();
        let mut offset = 0;
        loop {
            match read_lines(&mut reader, &cx, &topic, &mut offset, c.max_batch).await? {
                LinesEnd::Shutdown => return Ok(()),
                LinesEnd::Eof if !c.follow => return Ok(()),
                LinesEnd::Eof => {
                    tokio::select! {
                        _ = cx.shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from(c.poll_interval)) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use weir_core::testing::{run_source, source_conformance};

    fn cfg(path: PathBuf, follow: bool) -> Box<dyn Source> {
        FileSourceConfig {
            path,
            follow,
            poll_interval: HumanDuration::from_millis(20),
            max_batch: 3,
        }
        .build(&BuildContext {
            pipeline: "p".into(),
            component: "c".into(),
            options: Default::default(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn reads_every_line_then_ends_and_passes_conformance() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for i in 0..10 {
            writeln!(f, "{{\"i\":{i}}}").unwrap();
        }
        writeln!(f, "not json").unwrap();
        let run = source_conformance(cfg(f.path().into(), false), 11, false)
            .await
            .unwrap();
        assert_eq!(run.records[3].value.decoded().unwrap()["i"], 3);
        assert_eq!(
            *run.records[10].value.decoded().unwrap(),
            serde_json::json!("not json")
        );
        assert_eq!(run.records[10].meta.origin.as_ref().unwrap().offset, 10);
    }

    #[tokio::test]
    async fn follow_picks_up_appended_lines_and_stops_on_shutdown() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let path = f.path().to_path_buf();
        let writer = tokio::spawn(async move {
            for i in 0..5 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let mut h = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                writeln!(h, "{{\"i\":{i}}}").unwrap();
            }
        });
        let run = run_source(cfg(f.path().into(), true), Some(5), Duration::from_secs(2)).await;
        writer.await.unwrap();
        assert_eq!(run.records.len(), 5);
        assert!(
            matches!(run.result, Some(Ok(()))),
            "stops cleanly on shutdown"
        );
    }

    #[tokio::test]
    async fn missing_file_is_a_clear_error() {
        let run = run_source(
            cfg("/nonexistent/weir.ndjson".into(), false),
            None,
            Duration::from_secs(1),
        )
        .await;
        let err = run.result.unwrap().unwrap_err().to_string();
        assert!(
            err.contains("cannot open /nonexistent/weir.ndjson"),
            "{err}"
        );
    }
}
