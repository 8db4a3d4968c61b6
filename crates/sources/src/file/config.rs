//! Options of the `file` source.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::{BuildContext, BuildError, HumanDuration, PluginConfig, Source};

use super::FileSource;
use super::checkpoint::CheckpointStore;

/// Reads a file of JSON lines (a line of text that is not JSON becomes a string). Without
/// `follow` the pipeline ends after the last line is delivered; with `follow` it waits for
/// appended lines like `tail -F`, and keeps reading across rotation: a file renamed away is read
/// to its end before the new file at `path` is read from its start, and a file truncated in place
/// (copy-truncate) is read again from its start. While following, a line is a record only once
/// its newline is written.
///
/// The read position is kept in a checkpoint in the data folder (`weir run --data-dir`,
/// `weir serve --state-dir`), committed once the records before it are delivered, as Kafka
/// offsets are: a restart resumes after the last delivered line, also after `kill -9`. The
/// checkpoint names the file by device, inode and a fingerprint of its first bytes, so a file
/// replaced or rotated while Weir was down is recognised (and a rotated file's unread rest is
/// read first, when it is still in the same folder).
///
/// Records carry the path as topic, partition 0 and the line number as offset (counted from the
/// start of the file being read; it starts again at 0 after a rotation).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read.
    pub path: PathBuf,
    /// Keep reading lines appended after the end is reached.
    #[serde(default)]
    pub follow: bool,
    /// With `follow`, how often to look for new lines and for rotation.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// Most lines per batch sent downstream.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Keep the read position across restarts (needs a data folder). With `false` every run
    /// reads the file from its start.
    #[serde(default = "default_checkpoint")]
    pub checkpoint: bool,
    /// How often the position of delivered lines is written (and always at shutdown).
    #[serde(default = "default_commit")]
    pub commit_interval: HumanDuration,
}

fn default_poll() -> HumanDuration {
    HumanDuration::from_millis(250)
}
fn default_batch() -> usize {
    500
}
fn default_checkpoint() -> bool {
    true
}
fn default_commit() -> HumanDuration {
    HumanDuration::from_secs(1)
}

impl PluginConfig for FileSourceConfig {
    const TYPE: &'static str = "file";
    const SUMMARY: &'static str =
        "Read JSON lines from a file, optionally following appends and rotation";
    const EXAMPLE: &'static str = "type: file\npath: input/orders.ndjson\nfollow: false\n";
    type Output = dyn Source;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        if self.max_batch == 0 {
            return Err(BuildError::at("max_batch", "must be at least 1"));
        }
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::at("path", "must not be empty"));
        }
        let store = match (&cx.data_dir, self.checkpoint) {
            (Some(dir), true) => Some(CheckpointStore::new(
                dir,
                &cx.pipeline,
                &cx.component,
                &self.path,
            )),
            _ => None,
        };
        Ok(Box::new(FileSource {
            config: self,
            store,
        }))
    }
}
