//! `file`: appends JSON lines to a file; fsyncs on flush (and per batch if asked). The file always
//! ends on a line boundary: a batch that fails half-written is cut back before anything else is
//! appended, and a partial last line left by a crash is cut off when the file is opened.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::Mutex;
use weir_core::{BuildContext, BuildError, PluginConfig, Record, Sink, SinkError};

use crate::ndjson::write_line;

/// Appends records as JSON lines (the value, or the whole event with `envelope: true`). A batch is
/// acknowledged once the operating system has it, which survives a crash of Weir (`kill -9`);
/// with `fsync: true` it is acknowledged only after it reached the disk, which also survives a
/// power loss. The file is always fsynced at shutdown. Parent directories are created.
///
/// A write that fails part-way (a full disk, say) is cut back to where the batch began before
/// it is retried, and a file that does not end with a newline when it is opened (a crash in the
/// middle of a write) has its partial last line removed, so the file only ever holds whole lines.
///
/// As the pipeline's `dlq:`, the sink writes the envelope with the error headers unless
/// `envelope: false` is set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to.
    pub path: PathBuf,
    /// Write the whole event instead of just the value (default: false, and true for a `dlq:`).
    #[serde(default)]
    pub envelope: Option<bool>,
    /// fsync after every batch before acknowledging it.
    #[serde(default)]
    pub fsync: bool,
}

/// The file sink.
pub struct FileSink {
    path: PathBuf,
    envelope: bool,
    fsync: bool,
    state: Arc<Mutex<FileState>>,
}

/// The open file, and where a failed batch must be cut back to before the next write.
#[derive(Default)]
struct FileState {
    file: Option<File>,
    /// Set when a write failed and cutting back failed too: done when the file is next opened.
    cut_back_to: Option<u64>,
}

impl PluginConfig for FileSinkConfig {
    const TYPE: &'static str = "file";
    const SUMMARY: &'static str = "Append JSON lines to a file";
    const EXAMPLE: &'static str = "type: file\npath: out/records.ndjson\nfsync: false\n";
    type Output = dyn Sink;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::at("path", "must not be empty"));
        }
        Ok(Box::new(FileSink {
            envelope: self.envelope.unwrap_or(cx.is_dlq),
            path: self.path,
            fsync: self.fsync,
            state: Arc::new(Mutex::new(FileState::default())),
        }))
    }
}

weir_core::register_plugin!(FileSinkConfig);

fn retriable(what: &str, path: &Path, e: std::io::Error) -> SinkError {
    SinkError::retriable(format!("{what} {}: {e}", path.display()))
}

/// Opens the file for appending, first cutting back a failed batch or a partial last line.
fn open(path: &Path, cut_back_to: Option<u64>) -> Result<File, SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| retriable("cannot create", dir, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| retriable("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| retriable("cannot stat", path, e))?
        .len();
    let keep = match cut_back_to {
        Some(at) => at.min(len),
        None => {
            whole_lines_length(&mut file, len).map_err(|e| retriable("cannot read", path, e))?
        }
    };
    if keep < len {
        file.set_len(keep)
            .map_err(|e| retriable("cannot truncate", path, e))?;
        if cut_back_to.is_none() {
            tracing::warn!(
                path = %path.display(),
                "the file ended in a partial line ({} bytes, left by an interrupted write); removed it, the record it held is written again",
                len - keep
            );
        }
    }
    Ok(file)
}

/// The length of the file up to and including its last newline (all of it if it ends in one).
fn whole_lines_length(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Appends one batch; on failure cuts the file back to where the batch began.
fn append(state: &mut FileState, path: &Path, buf: &[u8], fsync: bool) -> Result<(), SinkError> {
    if state.file.is_none() {
        state.file = Some(open(path, state.cut_back_to)?);
        state.cut_back_to = None;
    }
    let file = state.file.as_mut().expect("opened above");
    let before = file
        .metadata()
        .map_err(|e| retriable("cannot stat", path, e))?
        .len();
    let mut result = file
        .write_all(buf)
        .map_err(|e| retriable("write to", path, e));
    if result.is_ok() && fsync {
        result = file.sync_data().map_err(|e| retriable("fsync of", path, e));
    }
    if result.is_err() {
        // Leave no partial line behind for the retry to append after.
        if file.set_len(before).is_err() {
            state.cut_back_to = Some(before);
        }
        state.file = None;
    }
    result
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(
            records.iter().map(Record::approx_size).sum::<usize>() + records.len(),
        );
        for r in records {
            write_line(r, self.envelope, &mut buf);
        }
        // Taken before the blocking write, so concurrent writes append in the order they began.
        let mut state = self.state.clone().lock_owned().await;
        let path = self.path.clone();
        let fsync = self.fsync;
        tokio::task::spawn_blocking(move || append(&mut state, &path, &buf, fsync))
            .await
            .map_err(|e| SinkError::retriable(format!("file write task failed: {e}")))?
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let mut state = self.state.clone().lock_owned().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if state.file.is_none() {
                state.file = Some(open(&path, state.cut_back_to)?);
                state.cut_back_to = None;
            }
            Ok(())
        })
        .await
        .map_err(|e| SinkError::retriable(format!("file open task failed: {e}")))?
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let state = self.state.clone().lock_owned().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match &state.file {
            Some(f) => f.sync_all().map_err(|e| retriable("fsync of", &path, e)),
            None => Ok(()),
        })
        .await
        .map_err(|e| SinkError::retriable(format!("file flush task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests;
