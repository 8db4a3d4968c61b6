//! `file`: appends JSON lines to a file; fsyncs on flush (and per batch if asked).

use std::path::PathBuf;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use weir_core::{BuildContext, BuildError, PluginConfig, Record, Sink, SinkError};

use crate::ndjson::write_line;

/// Appends records as JSON lines (the value, or the whole event with `envelope: true`). A batch is
/// acknowledged once the operating system has it, which survives a crash of Weir (`kill -9`);
/// with `fsync: true` it is acknowledged only after it reached the disk, which also survives a
/// power loss. The file is always fsynced at shutdown. Parent directories are created.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to.
    pub path: PathBuf,
    /// Write the whole event instead of just the value.
    #[serde(default)]
    pub envelope: bool,
    /// fsync after every batch before acknowledging it.
    #[serde(default)]
    pub fsync: bool,
}

/// The file sink.
pub struct FileSink {
    config: FileSinkConfig,
    file: Mutex<Option<tokio::fs::File>>,
}

impl PluginConfig for FileSinkConfig {
    const TYPE: &'static str = "file";
    const SUMMARY: &'static str = "Append JSON lines to a file";
    const EXAMPLE: &'static str = "type: file\npath: out/records.ndjson\nfsync: false\n";
    type Output = dyn Sink;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::at("path", "must not be empty"));
        }
        Ok(Box::new(FileSink {
            config: self,
            file: Mutex::new(None),
        }))
    }
}

weir_core::register_plugin!(FileSinkConfig);

impl FileSink {
    async fn open(&self) -> Result<tokio::fs::File, SinkError> {
        let p = &self.config.path;
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                SinkError::retriable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .await
            .map_err(|e| SinkError::retriable(format!("cannot open {}: {e}", p.display())))
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 320);
        for r in records {
            write_line(r, self.config.envelope, &mut buf);
        }
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await?);
        }
        let f = guard.as_mut().expect("opened above");
        let path = self.config.path.display();
        // tokio's `File` finishes a write on a background thread: `write_all` returning means
        // the bytes were handed over, `flush` that the operating system has them. Acking before
        // the flush lost records under load.
        let written = match f.write_all(&buf).await {
            Ok(()) => f.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Reopen on the next attempt; a partial line may remain, which readers skip as invalid.
            *guard = None;
            return Err(SinkError::retriable(format!("write to {path} failed: {e}")));
        }
        if self.config.fsync {
            f.sync_data()
                .await
                .map_err(|e| SinkError::retriable(format!("fsync of {path} failed: {e}")))?;
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let f = self.open().await?;
        *self.file.lock().await = Some(f);
        Ok(())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        if let Some(f) = self.file.lock().await.as_mut() {
            f.flush()
                .await
                .map_err(|e| SinkError::retriable(e.to_string()))?;
            f.sync_all()
                .await
                .map_err(|e| SinkError::retriable(format!("fsync failed: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::testing::{BoxFuture, SinkCapabilities, sink_conformance};

    fn read(path: PathBuf) -> BoxFuture<'static, Vec<Record>> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            text.lines()
                .map(|l| Record::from_bytes(l.as_bytes().to_vec()))
                .collect()
        })
    }

    #[tokio::test]
    async fn passes_sink_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/out.ndjson");
        for fsync in [false, true] {
            let _ = std::fs::remove_file(&path);
            let sink = FileSinkConfig {
                path: path.clone(),
                envelope: false,
                fsync,
            }
            .build(&BuildContext {
                pipeline: "p".into(),
                component: "f".into(),
                options: Default::default(),
            })
            .unwrap();
            let p = path.clone();
            sink_conformance(
                &*sink,
                SinkCapabilities {
                    headers: false,
                    keys: false,
                },
                &move || read(p.clone()),
            )
            .await
            .unwrap();
        }
    }

    #[tokio::test]
    async fn unwritable_path_is_a_retriable_error_naming_the_path() {
        let sink = FileSinkConfig {
            path: "/proc/weir-cannot/x.ndjson".into(),
            envelope: false,
            fsync: false,
        }
        .build(&BuildContext {
            pipeline: "p".into(),
            component: "f".into(),
            options: Default::default(),
        })
        .unwrap();
        let err = sink
            .write(&weir_core::testing::sample_records(1))
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::Retriable { .. }), "{err:?}");
        assert!(err.to_string().contains("/proc/weir-cannot"), "{err}");
    }
}
