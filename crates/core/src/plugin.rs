//! The three plugin traits (sources, transforms, sinks) and the context a source runs in.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::{AckReceiver, Acker};
use crate::record::{Batch, Record};

/// The three kinds of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    /// Reads records.
    Source,
    /// Changes, filters or enriches records.
    Transform,
    /// Writes records.
    Sink,
}

impl PluginKind {
    /// `source`, `transform` or `sink`.
    pub fn noun(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Transform => "transform",
            PluginKind::Sink => "sink",
        }
    }
}

/// Identifies a running component in logs, metrics and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentId {
    /// Pipeline name.
    pub pipeline: Arc<str>,
    /// Component name (the `name:` key, or `type` plus index).
    pub component: Arc<str>,
}

/// A source failed and the pipeline must stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading failed (I/O, connection); the message says what and where.
    #[error("source read failed: {0}")]
    Read(String),
    /// The pipeline stopped accepting records while the source still had some.
    #[error("pipeline closed while the source was still sending")]
    Closed,
    /// Anything else, with an explanation.
    #[error("{0}")]
    Other(String),
}

/// Everything a running source needs: where to send batches, its acks, and the shutdown signal.
pub struct SourceContext {
    /// Cancelled when the pipeline is asked to stop; stop reading, keep the ack loop running.
    pub shutdown: CancellationToken,
    /// Who this is.
    pub id: ComponentId,
    out: Option<mpsc::Sender<Batch>>,
    acker: Arc<Acker>,
    acks: Option<AckReceiver>,
}

/// The pipeline no longer accepts batches (it is shutting down or failed).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("pipeline closed")]
pub struct Closed;

impl SourceContext {
    /// Builds a context; the runner does this, tests and embedders may too.
    pub fn new(
        id: ComponentId,
        out: mpsc::Sender<Batch>,
        shutdown: CancellationToken,
    ) -> (Self, Arc<Acker>) {
        let (acker, acks) = Acker::new();
        (
            SourceContext {
                shutdown,
                id,
                out: Some(out),
                acker: acker.clone(),
                acks: Some(acks),
            },
            acker,
        )
    }

    /// Attaches acks to the records and sends them downstream as one batch, waiting while the
    /// pipeline is full (backpressure). Returns the batch token reported later by the ack receiver.
    pub async fn send(&self, mut records: Vec<Record>) -> Result<u64, Closed> {
        let out = self.out.as_ref().ok_or(Closed)?;
        let token = self.acker.attach(&mut records);
        out.send(Batch::new(records)).await.map_err(|_| Closed)?;
        Ok(token)
    }

    /// Like [`SourceContext::send`] but gives up after `timeout` (the records are dropped and their
    /// batch reports errored), for sources that must keep polling while the pipeline is full.
    pub async fn send_timeout(
        &self,
        mut records: Vec<Record>,
        timeout: Duration,
    ) -> Result<Option<u64>, Closed> {
        let out = self.out.as_ref().ok_or(Closed)?;
        let permit = match tokio::time::timeout(timeout, out.reserve()).await {
            Err(_) => return Ok(None),
            Ok(Err(_)) => return Err(Closed),
            Ok(Ok(p)) => p,
        };
        let token = self.acker.attach(&mut records);
        permit.send(Batch::new(records));
        Ok(Some(token))
    }

    /// Waits up to `timeout` for room for one more batch; `Ok(true)` when there is room (and,
    /// as long as this source is the only sender, the next [`SourceContext::send`] will not wait).
    pub async fn wait_for_capacity(&self, timeout: Duration) -> Result<bool, Closed> {
        let out = self.out.as_ref().ok_or(Closed)?;
        match tokio::time::timeout(timeout, out.reserve()).await {
            Err(_) => Ok(false),
            Ok(Err(_)) => Err(Closed),
            Ok(Ok(_permit)) => Ok(true),
        }
    }

    /// True when the next [`SourceContext::send`] would not wait.
    pub fn has_capacity(&self) -> bool {
        self.out.as_ref().is_some_and(|o| o.capacity() > 0)
    }

    /// Stops sending: downstream sees the end of input and drains, while this source keeps its
    /// ack receiver to wait for the outcomes and commit (the shutdown sequence of sources with
    /// positions).
    pub fn close_output(&mut self) {
        self.out = None;
    }

    /// Takes the receiver of batch completions; a source that commits positions owns this loop.
    /// Finite sources that need no positions may ignore it.
    pub fn take_acks(&mut self) -> Option<AckReceiver> {
        self.acks.take()
    }
}

/// A source of records: reads until its input ends or `cx.shutdown` is cancelled.
///
/// Sources never retry or sleep for the engine's sake: they read, send, and (if they have
/// positions) commit what their ack receiver reports done.
#[async_trait]
pub trait Source: Send {
    /// Runs the source to completion. Return `Ok` at the end of a finite input or after shutdown.
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError>;
}

/// How a transform failed, which decides what the runner does with the record.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// Worth retrying (a remote service was unavailable); the runner backs off and retries.
    #[error("{0}")]
    Retriable(String),
    /// Retrying will not help (bad payload, failed evaluation); the record goes to `on_error`.
    #[error("{0}")]
    Fatal(String),
}

impl TransformError {
    /// True for [`TransformError::Retriable`].
    pub fn is_retriable(&self) -> bool {
        matches!(self, TransformError::Retriable(_))
    }
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            TransformError::Retriable(m) | TransformError::Fatal(m) => m,
        }
    }
}

impl From<crate::record::DecodeError> for TransformError {
    fn from(e: crate::record::DecodeError) -> Self {
        TransformError::Fatal(e.to_string())
    }
}

/// What a transform did with a record.
#[derive(Debug)]
pub enum Flow {
    /// Keep the (possibly modified) record.
    Keep,
    /// Drop it: filtered out, which counts as done.
    Drop,
    /// Replace it with these records (build them with [`Record::derive`] so they share the ack).
    Split(Vec<Record>),
}

/// A transform: reshapes, filters or enriches records. Compiled once at start-up; `apply` runs for
/// every record and must not block.
#[async_trait]
pub trait Transform: Send + Sync {
    /// Processes one record in place.
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError>;

    /// True when the transform wants whole batches through [`Transform::apply_batch`] (remote calls).
    fn is_batched(&self) -> bool {
        false
    }

    /// The stage a failure here is reported as, in a dead letter's `__connect.errors.stage`
    /// header and its error class: `transform` (the default), `enrich` for a lookup in another
    /// system, `decode` and `encode` for the converters at the source and the sinks.
    fn stage(&self) -> &'static str {
        "transform"
    }

    /// Processes a batch; one outcome per record, in order. The default calls `apply` per record.
    async fn apply_batch(&self, records: &mut [Record]) -> Vec<Result<Flow, TransformError>> {
        records.iter_mut().map(|r| self.apply(r)).collect()
    }
}

/// The outcome of one record within a partially failed sink write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Durably written.
    Delivered,
    /// Not written; worth retrying.
    Retriable(String),
    /// Not written; retrying will not help.
    Fatal(String),
}

/// How a sink write failed. Plugins classify; the runner decides about retries and dead letters.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Nothing (durably) written; retry the whole batch, no sooner than `retry_after` if given.
    #[error("{message}")]
    Retriable {
        /// What failed.
        message: String,
        /// A server-requested delay (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Nothing written and retrying will not help; every record goes to `on_error`.
    #[error("{0}")]
    Fatal(String),
    /// Per-record outcomes, one per record in the batch, in order; the retriable ones are
    /// retried no sooner than `retry_after` if given (HTTP `Retry-After` on any of them).
    #[error("{} of {} records failed", .outcomes.iter().filter(|o| **o != RecordOutcome::Delivered).count(), .outcomes.len())]
    Partial {
        /// One outcome per record.
        outcomes: Vec<RecordOutcome>,
        /// A server-requested delay before the retriable records are tried again.
        retry_after: Option<Duration>,
    },
    /// The sink's output is gone for good (standard output closed by `| head`): the records are
    /// not at fault, so they are neither retried nor dead-lettered; the pipeline stops and
    /// leaves them uncommitted.
    #[error("{0}")]
    OutputClosed(String),
}

impl SinkError {
    /// A retriable error without a requested delay.
    pub fn retriable(message: impl Into<String>) -> Self {
        SinkError::Retriable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Per-record outcomes without a requested delay.
    pub fn partial(outcomes: Vec<RecordOutcome>) -> Self {
        SinkError::Partial {
            outcomes,
            retry_after: None,
        }
    }
}

/// A sink: durably writes batches. `write` may be called concurrently (up to `max_in_flight`).
/// Return `Ok` only once the records are as durable as the target allows.
///
/// The runner starts concurrent writes in batch order: each `write` future is polled once before
/// the next batch's is created, so whatever a write does before its first `.await` that waits
/// (or while holding a fair lock such as `tokio::sync::Mutex` taken there) happens in order.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes a batch.
    async fn write(&self, records: &[Record]) -> Result<(), SinkError>;

    /// Concurrent writes when the pipeline does not set `max_in_flight`. The default, 1, keeps
    /// records in order for any sink. Return more only if concurrent writes still land in the
    /// order they were started (see the trait documentation), as the Kafka sink's enqueue does.
    fn default_max_in_flight(&self) -> usize {
        1
    }

    /// Acquires what the sink serves from (a listening socket), once, when its pipeline
    /// starts: after the build, which `weir validate` also runs, and before any write. An
    /// error fails the pipeline's start (retried with backoff by a supervisor when
    /// retriable). Most sinks connect lazily and need nothing here.
    async fn open(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Checks the target is reachable; called at start-up when health checks are on.
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Makes everything written so far durable (fsync, producer flush). Called at shutdown.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}
