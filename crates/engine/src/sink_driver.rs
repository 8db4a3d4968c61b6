//! Drives one sink: its own transforms, batching by count, bytes and time, concurrent writes up to
//! `max_in_flight`, retries with backoff, and the error policy for what still fails.
//!
//! Writes are polled here, in the driver's task, not spawned: a new write is polled once before
//! the next is created, so writes start in batch order (the promise [`Sink`] documents).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::{FutureExt, poll};
use tokio::sync::mpsc;
use tokio::time::Instant;
use weir_core::config::{OnError, StageOptions};
use weir_core::{Batch, Record, RecordOutcome, Sink, SinkError};

use crate::dead_letter::StageFailure;
use crate::metrics::ComponentMetrics;
use crate::retry::{backoff, may_retry};
use crate::stages::{FailureRoute, TransformStage, apply_stages, fail_records};

/// A sink with its runner options.
pub struct SinkStage {
    /// Component name.
    pub name: Arc<str>,
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Batching, retries, concurrency.
    pub options: StageOptions,
    /// Effective failure policy.
    pub on_error: OnError,
    /// The sink's own transforms.
    pub transforms: Vec<TransformStage>,
    /// Counters.
    pub metrics: Arc<ComponentMetrics>,
}

struct WriteResult {
    delivered: u64,
    bytes: u64,
    failed: Vec<(Record, StageFailure)>,
    /// The sink's output was closed for good ([`SinkError::OutputClosed`]).
    closed: Option<String>,
}

fn sink_failure(component: &str, class: &str, message: String, attempts: u32) -> StageFailure {
    StageFailure {
        stage: "sink",
        component: component.to_owned(),
        class: format!("weir.sink.{class}"),
        message,
        attempts,
    }
}

async fn write_with_retry(
    sink: Arc<dyn Sink>,
    name: Arc<str>,
    opts: StageOptions,
    metrics: Arc<ComponentMetrics>,
    mut records: Vec<Record>,
) -> WriteResult {
    let mut attempts = 1u32;
    let mut failed = Vec::new();
    let mut delivered = 0u64;
    let mut bytes = 0u64;
    loop {
        let size: u64 = records.iter().map(|r| r.approx_size() as u64).sum();
        let (retry, retry_after, last_message) = match sink.write(&records).await {
            Ok(()) => {
                delivered += records.len() as u64;
                bytes += size;
                // Dropping the records now reports them delivered.
                return WriteResult {
                    delivered,
                    bytes,
                    failed,
                    closed: None,
                };
            }
            Err(SinkError::Retriable {
                message,
                retry_after,
            }) => (std::mem::take(&mut records), retry_after, message),
            Err(SinkError::Fatal(message)) => {
                failed.extend(
                    records
                        .into_iter()
                        .map(|r| (r, sink_failure(&name, "Fatal", message.clone(), attempts))),
                );
                return WriteResult {
                    delivered,
                    bytes,
                    failed,
                    closed: None,
                };
            }
            Err(SinkError::OutputClosed(message)) => {
                // Not the records' fault: they stay uncommitted and the pipeline stops.
                fail_records(&records);
                return WriteResult {
                    delivered,
                    bytes,
                    failed,
                    closed: Some(message),
                };
            }
            Err(SinkError::Partial {
                outcomes,
                retry_after,
            }) if outcomes.len() == records.len() => {
                let mut retry = Vec::new();
                let mut msg = String::new();
                for (r, o) in records.into_iter().zip(outcomes) {
                    match o {
                        RecordOutcome::Delivered => {
                            delivered += 1;
                            bytes += r.approx_size() as u64;
                        }
                        RecordOutcome::Retriable(m) => {
                            msg = m;
                            retry.push(r);
                        }
                        RecordOutcome::Fatal(m) => {
                            failed.push((r, sink_failure(&name, "Fatal", m, attempts)))
                        }
                    }
                }
                (retry, retry_after, msg)
            }
            Err(SinkError::Partial { outcomes, .. }) => {
                let message = format!(
                    "sink bug: {} outcomes for {} records",
                    outcomes.len(),
                    records.len()
                );
                (std::mem::take(&mut records), None, message)
            }
            Err(other) => (std::mem::take(&mut records), None, other.to_string()),
        };
        if retry.is_empty() {
            return WriteResult {
                delivered,
                bytes,
                failed,
                closed: None,
            };
        }
        if !may_retry(&opts.retry, attempts) {
            failed.extend(retry.into_iter().map(|r| {
                (
                    r,
                    sink_failure(&name, "RetriesExhausted", last_message.clone(), attempts),
                )
            }));
            return WriteResult {
                delivered,
                bytes,
                failed,
                closed: None,
            };
        }
        let delay = backoff(&opts.retry, attempts, retry_after);
        tracing::warn!(component = %name, attempt = attempts, "write failed, retrying in {delay:?}: {}", weir_core::redact::urls(&last_message));
        metrics.retries.inc(1);
        metrics.health.degraded(format!(
            "writes are being retried (attempt {attempts}): {}",
            weir_core::redact::urls(&last_message)
        ));
        tokio::time::sleep(delay).await;
        attempts += 1;
        records = retry;
    }
}

/// Takes the next batch off the front of `pending` within the count and byte limits (at least one),
/// returning it with its size in bytes.
fn cut(pending: &mut Vec<Record>, opts: &StageOptions) -> (Vec<Record>, usize) {
    let mut bytes = 0;
    let mut n = 0;
    for r in pending.iter().take(opts.batch.max_records) {
        let size = r.approx_size();
        if n > 0 && bytes + size > opts.batch.max_bytes {
            break;
        }
        bytes += size;
        n += 1;
    }
    let rest = pending.split_off(n);
    (std::mem::replace(pending, rest), bytes)
}

/// Runs the sink until its input closes and every write finished. For the DLQ sink (`is_dlq`), a
/// record the DLQ cannot take fails the pipeline and stays uncommitted instead of following
/// `on_error`.
pub async fn run_sink(
    stage: SinkStage,
    mut rx: mpsc::Receiver<Batch>,
    route: FailureRoute,
    is_dlq: bool,
) {
    let opts = stage.options;
    let max_in_flight = opts
        .max_in_flight
        .unwrap_or_else(|| stage.sink.default_max_in_flight())
        .max(1);
    let max_wait = std::time::Duration::from(opts.batch.max_wait);
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut first_at: Option<Instant> = None;
    type Write = Pin<Box<dyn Future<Output = std::thread::Result<WriteResult>> + Send>>;
    let mut inflight: FuturesUnordered<Write> = FuturesUnordered::new();
    let mut closed = false;
    loop {
        let due = first_at.is_some_and(|t| t + max_wait <= Instant::now());
        while inflight.len() < max_in_flight
            && !pending.is_empty()
            && (closed
                || due
                || pending.len() >= opts.batch.max_records
                || pending_bytes >= opts.batch.max_bytes)
        {
            let (batch, bytes) = cut(&mut pending, &opts);
            pending_bytes -= bytes;
            first_at = (!pending.is_empty()).then(Instant::now);
            let mut write: Write = Box::pin(
                AssertUnwindSafe(write_with_retry(
                    stage.sink.clone(),
                    stage.name.clone(),
                    opts,
                    stage.metrics.clone(),
                    batch,
                ))
                .catch_unwind(),
            );
            // The first poll, now, in batch order; the rest as the set is polled below.
            if let Poll::Ready(done) = poll!(write.as_mut()) {
                write = Box::pin(std::future::ready(done));
            }
            inflight.push(write);
        }
        if closed && pending.is_empty() && inflight.is_empty() {
            break;
        }
        let room = pending.len() < opts.batch.max_records && pending_bytes < opts.batch.max_bytes;
        let deadline = first_at.map(|t| t + max_wait);
        tokio::select! {
            Some(done) = inflight.next(), if !inflight.is_empty() => match done {
                Ok(res) => {
                    if let Some(why) = &res.closed {
                        route.shared.stop_output_closed(&stage.name, why);
                    }
                    stage.metrics.sent_events.inc(res.delivered);
                    stage.metrics.sent_bytes.inc(res.bytes);
                    if res.delivered > 0 && inflight.is_empty() {
                        stage.metrics.health.ok();
                    }
                    let nfailed = res.failed.len() as u64;
                    route.shared.account(res.delivered + nfailed, nfailed);
                    if nfailed > 0 {
                        if is_dlq {
                            for (_, f) in &res.failed {
                                stage.metrics.failed(&f.class, 1);
                            }
                            let first = res.failed[0].1.clone();
                            let records: Vec<Record> = res.failed.into_iter().map(|(r, _)| r).collect();
                            fail_records(&records);
                            route.shared.fail(format!(
                                "the dead-letter sink `{}` could not write {nfailed} record(s) after {} attempt(s): {}; they stay uncommitted and are read again after a restart",
                                stage.name,
                                first.attempts,
                                weir_core::redact::urls(&first.message)
                            ));
                        } else {
                            route.route(stage.on_error, &stage.metrics, res.failed).await;
                        }
                    }
                }
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    route.shared.fail_as(
                        crate::topology::FailureKind::Fatal,
                        format!("sink `{}` crashed: {why}", stage.name),
                    )
                }
            },
            msg = rx.recv(), if !closed && room => match msg {
                Some(batch) => {
                    stage.metrics.received_events.inc(batch.len() as u64);
                    stage.metrics.received_bytes.inc(batch.records.iter().map(|r| r.approx_size() as u64).sum());
                    let records = apply_stages(&stage.transforms, batch.records, &route).await;
                    if !records.is_empty() {
                        pending_bytes += records.iter().map(Record::approx_size).sum::<usize>();
                        first_at.get_or_insert_with(Instant::now);
                        pending.extend(records);
                    }
                }
                None => closed = true,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && !due => {}
        }
    }
    if let Err(e) = stage.sink.flush().await {
        tracing::warn!(component = %stage.name, "flush at shutdown failed: {e}");
    }
}
