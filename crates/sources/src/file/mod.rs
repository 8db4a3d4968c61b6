//! `file`: reads one JSON document per line from a file, optionally following appends across
//! rotation, and keeps a checkpoint of the delivered position.

pub mod checkpoint;
mod config;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use weir_core::{AckReceiver, PartitionOffsets, Record, Source, SourceContext, SourceError};

use crate::lines::LineReader;
use checkpoint::{Checkpoint, CheckpointStore, FileId, HEAD_BYTES, head_hash};
pub use config::FileSourceConfig;

weir_core::register_plugin!(FileSourceConfig);

/// The file source.
pub struct FileSource {
    config: FileSourceConfig,
    store: Option<CheckpointStore>,
}

/// A file that records were read from: what a checkpoint needs to name it.
struct OpenedFile {
    id: FileId,
    /// A second handle on the same file, to fingerprint its first bytes at commit time.
    handle: std::fs::File,
}

/// One file being read.
struct Reading {
    file: Arc<OpenedFile>,
    reader: LineReader<tokio::fs::File>,
}

/// Where a sent batch ends: the checkpoint to write once it and every batch before it is done.
#[derive(Clone)]
struct Mark {
    file: Arc<OpenedFile>,
    position: u64,
    line: i64,
}

fn read_error(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::Read(format!("cannot read {}: {e}", path.display()))
}

/// Opens `path` and positions it at `position` bytes (line `line`).
fn open_at(path: &Path, position: u64, line: i64) -> Result<Reading, SourceError> {
    let open = || -> std::io::Result<Reading> {
        let mut f = std::fs::File::open(path)?;
        let id = FileId::of(&f.metadata()?);
        let handle = f.try_clone()?;
        f.seek(SeekFrom::Start(position))?;
        Ok(Reading {
            file: Arc::new(OpenedFile { id, handle }),
            reader: LineReader::new(tokio::fs::File::from_std(f), position, line),
        })
    };
    open().map_err(|e| SourceError::Read(format!("cannot open {}: {e}", path.display())))
}

/// A file in the same folder as `path` that is the checkpoint's file (renamed by rotation).
fn find_rotated(path: &Path, cp: &Checkpoint) -> Option<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::File::open(p).is_ok_and(|f| {
                f.metadata()
                    .is_ok_and(|m| m.is_file() && m.len() > cp.position && cp.matches(&f, &m))
            })
        })
}

/// Where to start: the checkpointed position when the file at `path` is still the file it names;
/// the rest of the checkpointed file first when it was rotated away while Weir was stopped;
/// otherwise the start of the file. Returns the file to read and, for a rotated file, the path
/// to read after it.
fn resume(path: &Path, cp: Option<Checkpoint>) -> Result<(Reading, Option<PathBuf>), SourceError> {
    let shown = path.display();
    let Some(cp) = cp else {
        return Ok((open_at(path, 0, 0)?, None));
    };
    let f = std::fs::File::open(path)
        .map_err(|e| SourceError::Read(format!("cannot open {shown}: {e}")))?;
    let meta = f.metadata().map_err(|e| read_error(path, e))?;
    if cp.matches(&f, &meta) {
        if meta.len() >= cp.position {
            tracing::info!(path = %shown, line = cp.line, "resuming after the last delivered line");
            return Ok((open_at(path, cp.position, cp.line)?, None));
        }
        tracing::warn!(path = %shown, "the file is shorter than the checkpoint: it was truncated while Weir was stopped; reading it from its start");
        return Ok((open_at(path, 0, 0)?, None));
    }
    if let Some(rotated) = find_rotated(path, &cp) {
        tracing::info!(path = %shown, rotated = %rotated.display(), line = cp.line, "the file was rotated while Weir was stopped: reading the rest of the rotated file first");
        return Ok((
            open_at(&rotated, cp.position, cp.line)?,
            Some(path.to_owned()),
        ));
    }
    tracing::info!(path = %shown, "the file is not the one the checkpoint names (rotated or replaced while Weir was stopped); reading it from its start");
    Ok((open_at(path, 0, 0)?, None))
}

/// The running source: reading, sending and committing.
struct Run<'a> {
    path: &'a Path,
    topic: Arc<str>,
    max_batch: usize,
    store: Option<&'a CheckpointStore>,
    /// Batch tokens in send order, tracked to their acks.
    tokens: PartitionOffsets,
    marks: VecDeque<(u64, Mark)>,
    /// The furthest mark whose batches (and all before) are done, and whether it is saved.
    committed: Option<Mark>,
    dirty: bool,
}

impl Run<'_> {
    async fn send(
        &mut self,
        cx: &SourceContext,
        records: Vec<Record>,
        at: &Reading,
    ) -> Result<(), SourceError> {
        if records.is_empty() {
            return Ok(());
        }
        let token = cx.send(records).await.map_err(|_| SourceError::Closed)?;
        if self.store.is_some() {
            self.tokens
                .track(token as i64)
                .map_err(|e| SourceError::Other(e.to_string()))?;
            self.marks.push_back((
                token,
                Mark {
                    file: at.file.clone(),
                    position: at.reader.position,
                    line: at.reader.next_line,
                },
            ));
        }
        Ok(())
    }

    fn acked(&mut self, token: u64, done: bool) {
        if self.tokens.ack(token as i64, done).is_err() {
            return;
        }
        let Some(upto) = self.tokens.committable() else {
            return;
        };
        while let Some((t, _)) = self.marks.front() {
            if *t as i64 > upto {
                break;
            }
            self.committed = self.marks.pop_front().map(|(_, m)| m);
            self.dirty = true;
        }
    }

    async fn commit(&mut self) {
        let (Some(store), Some(mark), true) = (self.store, &self.committed, self.dirty) else {
            return;
        };
        let handle = &mark.file.handle;
        let head_len = handle.metadata().map_or(0, |m| m.len().min(HEAD_BYTES));
        let head_hash = match head_hash(handle, head_len) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot fingerprint the file for its checkpoint: {e}");
                return;
            }
        };
        let cp = Checkpoint {
            path: self.path.display().to_string(),
            dev: mark.file.id.dev,
            ino: mark.file.id.ino,
            head_len,
            head_hash,
            position: mark.position,
            line: mark.line,
        };
        match store.save(&cp).await {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(checkpoint = %store.path().display(), "cannot write the checkpoint: {e}; it is tried again")
            }
        }
    }

    /// Reads a file that will not grow any more to its end, partial last line included.
    async fn drain(&mut self, cx: &SourceContext, mut current: Reading) -> Result<(), SourceError> {
        loop {
            let b = current
                .reader
                .read_batch(&self.topic, self.max_batch, false)
                .await
                .map_err(|e| read_error(self.path, e))?;
            self.send(cx, b.records, &current).await?;
            if b.at_end {
                return Ok(());
            }
        }
    }

    /// While following: notices a rename rotation (another file at the path) and a
    /// copy-truncate (the file shorter than what was read), and returns the file to read next.
    async fn check_rotation(
        &mut self,
        cx: &SourceContext,
        current: Reading,
    ) -> Result<Reading, SourceError> {
        let shown = self.path.display();
        let Ok(meta) = std::fs::metadata(self.path) else {
            // Renamed, the new file not created yet: the old one may still be written.
            return Ok(current);
        };
        if FileId::of(&meta) != current.file.id {
            self.drain(cx, current).await?;
            tracing::info!(path = %shown, "the file was rotated (renamed): read the old file to its end, now reading the new file from its start");
            return open_at(self.path, 0, 0);
        }
        if meta.len() < current.reader.position + current.reader.partial().len() as u64 {
            tracing::warn!(path = %shown, "the file was truncated (copy-truncate rotation): reading it again from its start");
            return open_at(self.path, 0, 0);
        }
        Ok(current)
    }
}

async fn next_ack(acks: &mut Option<AckReceiver>) -> Option<weir_core::BatchAck> {
    match acks {
        Some(a) => a.recv().await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), SourceError> {
        let c = &self.config;
        let store = self.store.as_ref();
        let (mut current, mut next) = resume(&c.path, store.and_then(CheckpointStore::load))?;
        let mut acks = if store.is_some() {
            cx.take_acks()
        } else {
            None
        };
        let poll = Duration::from(c.poll_interval);
        let mut tick = tokio::time::interval(c.commit_interval.into());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut run = Run {
            path: &c.path,
            topic: c.path.display().to_string().into(),
            max_batch: c.max_batch,
            store,
            tokens: PartitionOffsets::default(),
            marks: VecDeque::new(),
            committed: None,
            dirty: false,
        };
        let mut sleeping: Option<Instant> = None;
        loop {
            // A rotated file resumed at start-up is read to its end, partial line included.
            let hold_partial = c.follow && next.is_none();
            tokio::select! {
                biased;
                _ = cx.shutdown.cancelled() => break,
                Some(ack) = next_ack(&mut acks) => run.acked(ack.token, ack.worst().is_done()),
                _ = tick.tick(), if store.is_some() => run.commit().await,
                _ = tokio::time::sleep_until(sleeping.unwrap_or_else(Instant::now)), if sleeping.is_some() => {
                    sleeping = None;
                    current = run.check_rotation(&cx, current).await?;
                }
                b = current.reader.read_batch(&run.topic, c.max_batch, hold_partial), if sleeping.is_none() => {
                    let b = b.map_err(|e| read_error(&c.path, e))?;
                    run.send(&cx, b.records, &current).await?;
                    if b.at_end {
                        if let Some(path) = next.take() {
                            current = open_at(&path, 0, 0)?;
                        } else if c.follow {
                            sleeping = Some(Instant::now() + poll);
                        } else {
                            break;
                        }
                    }
                }
            }
        }
        // Stop sending so the pipeline drains, and commit what it delivers.
        cx.close_output();
        while run.tokens.in_flight() > 0 && !run.tokens.is_blocked() {
            match next_ack(&mut acks).await {
                Some(ack) => run.acked(ack.token, ack.worst().is_done()),
                None => break,
            }
        }
        run.commit().await;
        Ok(())
    }
}
