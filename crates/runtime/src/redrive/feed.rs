//! The redrive's source: it runs the DLQ's reader (the `kafka` or `file` source, with their
//! commit-after-ack), reads up to where the DLQ ended when the redrive started, passes on the
//! letters the selection takes as the records they were, and hands each letter's outcome back
//! to the reader, so the reader commits a letter only once its record is done.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_core::{Ack, AckStatus, Batch, Record, Source, SourceContext, SourceError};

use super::letter::{self, LetterFormat, Selector};

/// Counts of a redrive while it runs, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Letters to read, when known (0 until then).
    pub total: AtomicU64,
    /// Letters read.
    pub read: AtomicU64,
    /// Letters the selection took and sent on.
    pub selected: AtomicU64,
    /// Letters the selection left in the DLQ.
    pub skipped: AtomicU64,
    /// Lines or messages that are not dead letters.
    pub unreadable: AtomicU64,
    /// Redriven records that are done: written by every sink (or, into a pipeline, filtered
    /// or dead-lettered again).
    pub delivered: AtomicU64,
    /// Redriven records that failed (they stay in the DLQ and are read again next time).
    pub failed: AtomicU64,
}

impl Progress {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Where the letters of the DLQ end: per partition (a file has partition 0), the offset just
/// after the last letter there was when the redrive started.
#[derive(Debug, Clone, Default)]
pub struct Ends(pub HashMap<i32, i64>);

/// The redrive's source (see the module documentation).
pub struct RedriveSource {
    /// The DLQ's reader.
    pub reader: Box<dyn Source>,
    /// What the reader's records are.
    pub format: LetterFormat,
    /// Where to stop.
    pub ends: Ends,
    /// Partitions with letters still to read (those whose start is before their end).
    pub pending: HashSet<i32>,
    /// Which letters to take.
    pub selector: Arc<Selector>,
    /// Counts.
    pub progress: Arc<Progress>,
    /// Report every record not done to the reader, so nothing is committed.
    pub dry_run: bool,
    /// Stop when nothing was read for this long although letters were expected.
    pub idle_timeout: Duration,
    /// The redrive's time, for `weir.redrive.at`.
    pub started_at: i64,
    /// The name of the DLQ for `weir.redrive.from`: a topic, or a file's path.
    pub dlq_name: String,
}

impl RedriveSource {
    /// `weir.redrive.from` of a letter read at this position.
    fn from(&self, partition: i32, offset: i64) -> String {
        match self.format {
            LetterFormat::Record => format!("{}/{partition}/{offset}", self.dlq_name),
            LetterFormat::Envelope => format!("{}:{}", self.dlq_name, offset + 1),
        }
    }

    /// Sorts one batch of the reader: letters past the end are refused (not done, so not
    /// committed: a later redrive reads them), letters the selection leaves are done, the rest
    /// go on with their reader's ack kept aside.
    fn sort(&mut self, batch: Batch, out: &mut Vec<Record>, acks: &mut Vec<Ack>) {
        for mut r in batch.records {
            let ack = std::mem::take(&mut r.ack);
            let (partition, offset) = r
                .meta
                .origin
                .as_ref()
                .map_or((0, 0), |o| (o.partition, o.offset));
            let end = self.ends.0.get(&partition).copied().unwrap_or(0);
            if offset >= end {
                ack.set(AckStatus::Errored);
                self.pending.remove(&partition);
                continue;
            }
            if offset + 1 >= end {
                self.pending.remove(&partition);
            }
            Progress::add(&self.progress.read, 1);
            let mut letter = match letter::decode(self.format, r) {
                Ok(l) => l,
                Err(e) => {
                    Progress::add(&self.progress.unreadable, 1);
                    tracing::warn!(
                        at = %self.from(partition, offset),
                        "not a dead letter, left where it is: {e}"
                    );
                    continue;
                }
            };
            if self.selector.judge(&mut letter).is_err() {
                Progress::add(&self.progress.skipped, 1);
                continue;
            }
            Progress::add(&self.progress.selected, 1);
            out.push(letter::redriven(
                letter,
                self.from(partition, offset),
                self.started_at,
            ));
            acks.push(ack);
        }
    }

    /// Hands the outcome of a batch of redriven records to the reader's acks.
    fn settle(&self, acks: Vec<Ack>, statuses: &[AckStatus]) {
        for (ack, status) in acks.into_iter().zip(statuses) {
            if status.is_done() {
                Progress::add(&self.progress.delivered, 1);
            } else {
                Progress::add(&self.progress.failed, 1);
            }
            ack.set(if self.dry_run {
                AckStatus::Errored
            } else {
                *status
            });
        }
    }
}

#[async_trait]
impl Source for RedriveSource {
    async fn run(mut self: Box<Self>, mut cx: SourceContext) -> Result<(), SourceError> {
        let (tx, mut from_reader) = mpsc::channel::<Batch>(4);
        let reader_stop = CancellationToken::new();
        let (reader_cx, _acker) = SourceContext::new(cx.id.clone(), tx, reader_stop.clone());
        let reader = std::mem::replace(&mut self.reader, Box::new(NoSource));
        let mut reader_task = tokio::spawn(reader.run(reader_cx));
        let mut acks = cx
            .take_acks()
            .ok_or_else(|| SourceError::Other("the ack receiver was already taken".into()))?;
        let shutdown = cx.shutdown.clone();
        let mut waiting: HashMap<u64, Vec<Ack>> = HashMap::new();
        // Forwarding letters, until every partition reached its end (or a stop, or nothing came
        // for the idle timeout). The reader runs on after that, committing what gets done, and
        // is stopped only once every record sent is done: it commits its last progress then.
        let mut reading = !self.pending.is_empty();
        if !reading {
            cx.close_output();
        }
        let mut reader_stopped = false;
        let mut reader_done: Option<Result<(), SourceError>> = None;
        let mut reader_open = true;
        let mut last_read = Instant::now();
        loop {
            if !reading && waiting.is_empty() && !reader_stopped {
                reader_stopped = true;
                reader_stop.cancel();
            }
            if reader_done.is_some() && !reader_open && waiting.is_empty() {
                break;
            }
            let mut stop_reading = false;
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if reading => stop_reading = true,
                Some(done) = acks.recv(), if !waiting.is_empty() => {
                    if let Some(a) = waiting.remove(&done.token) {
                        self.settle(a, &done.statuses);
                    }
                }
                r = &mut reader_task, if reader_done.is_none() => {
                    reader_done = Some(r.unwrap_or_else(|e| Err(SourceError::Other(format!("the DLQ reader crashed: {e}")))));
                }
                b = from_reader.recv(), if reader_open => match b {
                    Some(batch) if reading => {
                        last_read = Instant::now();
                        let mut out = Vec::with_capacity(batch.len());
                        let mut held = Vec::with_capacity(batch.len());
                        self.sort(batch, &mut out, &mut held);
                        if !out.is_empty() {
                            let token = cx.send(out).await.map_err(|_| SourceError::Closed)?;
                            waiting.insert(token, held);
                        }
                        stop_reading = self.pending.is_empty();
                    }
                    // Read after the redrive stopped reading: not done, read again next time.
                    Some(batch) => batch.records.iter().for_each(|r| r.ack.set(AckStatus::Errored)),
                    None => {
                        // The reader ended (it failed, or was stopped).
                        reader_open = false;
                        stop_reading = reading;
                    }
                },
                _ = tokio::time::sleep_until(last_read + self.idle_timeout), if reading => {
                    let mut left: Vec<i32> = self.pending.iter().copied().collect();
                    left.sort_unstable();
                    tracing::warn!(
                        "no letter arrived for {:?} although partitions {left:?} have more before their end; stopping (run the redrive again to go on)",
                        self.idle_timeout
                    );
                    stop_reading = true;
                }
            }
            if stop_reading && reading {
                reading = false;
                cx.close_output();
            }
        }
        reader_done.unwrap_or(Ok(()))
    }
}

/// Stands in for the reader once it runs on its own task.
struct NoSource;

#[async_trait]
impl Source for NoSource {
    async fn run(self: Box<Self>, _cx: SourceContext) -> Result<(), SourceError> {
        Ok(())
    }
}
