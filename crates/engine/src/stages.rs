//! Running records through transform stages with the per-record error policy, and routing
//! failures (dead-letter, drop, stop, keep) the same way for every stage.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_core::config::{OnError, StageOptions};
use weir_core::{AckStatus, Batch, Flow, Record, Transform, TransformError};

use crate::budget::Budget;
use crate::dead_letter::{StageFailure, dead_letter};
use crate::metrics::ComponentMetrics;
use crate::retry::{backoff, may_retry};
use crate::topology::FailureKind;
use weir_core::telemetry::Health;

/// State shared by every task of one running pipeline.
pub struct RunState {
    /// Pipeline name.
    pub pipeline: Arc<str>,
    /// Cancelled to stop reading (graceful stop, or failure).
    pub stop: CancellationToken,
    failure: Mutex<Option<(String, FailureKind)>>,
    budget: Option<Budget>,
    /// Degraded while the error budget is being spent.
    budget_health: Health,
}

impl RunState {
    /// The state of a pipeline about to run.
    pub fn new(
        pipeline: Arc<str>,
        stop: CancellationToken,
        budget: Option<Budget>,
        budget_health: Health,
    ) -> Self {
        RunState {
            pipeline,
            stop,
            failure: Mutex::new(None),
            budget,
            budget_health,
        }
    }

    /// Fails the pipeline with a failure that may pass by itself (the first reason wins) and
    /// starts a graceful stop.
    pub fn fail(&self, reason: impl Into<String>) {
        self.fail_as(FailureKind::Transient, reason);
    }

    /// Fails the pipeline (the first reason wins) and starts a graceful stop.
    pub fn fail_as(&self, kind: FailureKind, reason: impl Into<String>) {
        // Whatever a component reported, no URL credential reaches the log or the status.
        let reason = weir_core::redact::urls(&reason.into()).into_owned();
        let mut f = self.failure.lock().expect("failure lock");
        if f.is_none() {
            if kind == FailureKind::OutputClosed {
                tracing::info!(pipeline = %self.pipeline, "{reason}; stopping the pipeline (records not written stay uncommitted)");
            } else {
                tracing::error!(pipeline = %self.pipeline, "{reason}; stopping the pipeline");
            }
            *f = Some((reason, kind));
        }
        self.stop.cancel();
    }

    /// Stops the pipeline because a sink's output is gone for good (standard output closed): the
    /// records it did not write stay uncommitted, nothing is dead-lettered.
    pub fn stop_output_closed(&self, component: &str, why: &str) {
        self.fail_as(
            FailureKind::OutputClosed,
            format!("sink `{component}`: {why}"),
        );
    }

    /// Why the pipeline failed, and how, if it did.
    pub fn failure(&self) -> Option<(String, FailureKind)> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Accounts outcomes against the error budget; an exhausted budget is a fatal failure.
    pub fn account(&self, total: u64, failed: u64) {
        let Some(b) = &self.budget else {
            return;
        };
        if total == 0 {
            return;
        }
        if let Some(reason) = b.record(total, failed) {
            self.fail_as(FailureKind::Fatal, reason);
            return;
        }
        match b.spent() {
            (0, _) => self.budget_health.ok(),
            (f, n) => self.budget_health.degraded(format!(
                "error budget being spent: {f} of {n} records failed in the last {}",
                b.window()
            )),
        }
    }
}

/// A transform with its runner options.
pub struct TransformStage {
    /// Component name.
    pub name: Arc<str>,
    /// The transform.
    pub transform: Arc<dyn Transform>,
    /// Retry options.
    pub options: StageOptions,
    /// Effective failure policy.
    pub on_error: OnError,
    /// Counters.
    pub metrics: Arc<ComponentMetrics>,
}

/// Where failed records go.
#[derive(Clone)]
pub struct FailureRoute {
    /// The pipeline's DLQ channel, if it has one.
    pub dlq: Option<mpsc::Sender<Batch>>,
    /// RunState pipeline state.
    pub shared: Arc<RunState>,
}

/// Marks records as failed so their source never commits past them.
pub fn fail_records(records: &[Record]) {
    for r in records {
        r.ack.set(AckStatus::Errored);
    }
}

impl FailureRoute {
    /// Applies a stage's `on_error` to failed records. Returns the records to keep (`keep`).
    pub async fn route(
        &self,
        on_error: OnError,
        metrics: &ComponentMetrics,
        failed: Vec<(Record, StageFailure)>,
    ) -> Vec<Record> {
        if failed.is_empty() {
            return Vec::new();
        }
        let n = failed.len() as u64;
        for (_, f) in &failed {
            metrics.failed(&f.class, 1);
        }
        let first = &failed[0].1;
        let summary = format!(
            "{} record(s) failed at {} `{}` after {} attempt(s): {}",
            n,
            first.stage,
            first.component,
            first.attempts,
            weir_core::redact::urls(&first.message)
        );
        match on_error {
            OnError::Keep => {
                tracing::warn!(pipeline = %self.shared.pipeline, "{summary}; passing them on unchanged (on_error: keep)");
                failed.into_iter().map(|(r, _)| r).collect()
            }
            OnError::Drop => {
                tracing::warn!(pipeline = %self.shared.pipeline, "{summary}; dropped (on_error: drop)");
                metrics.discarded_dropped.inc(n);
                Vec::new()
            }
            OnError::Stop => {
                // Retries that ran out may succeed later; a record refused for good will not.
                let kind = if failed
                    .iter()
                    .all(|(_, f)| f.class.ends_with("RetriesExhausted"))
                {
                    FailureKind::Transient
                } else {
                    FailureKind::Fatal
                };
                let records: Vec<Record> = failed.into_iter().map(|(r, _)| r).collect();
                fail_records(&records);
                self.shared
                    .fail_as(kind, format!("{summary} (on_error: stop)"));
                Vec::new()
            }
            OnError::Dlq => {
                let Some(tx) = &self.dlq else {
                    let records: Vec<Record> = failed.into_iter().map(|(r, _)| r).collect();
                    fail_records(&records);
                    self.shared.fail_as(
                        FailureKind::Fatal,
                        format!("{summary}; on_error is dlq but the pipeline has no dlq"),
                    );
                    return Vec::new();
                };
                tracing::warn!(pipeline = %self.shared.pipeline, "{summary}; sent to the dead-letter queue");
                metrics.dead_letters.inc(n);
                let letters: Vec<Record> = failed
                    .iter()
                    .map(|(r, f)| dead_letter(r.clone(), &self.shared.pipeline, f))
                    .collect();
                drop(failed);
                if let Err(mpsc::error::SendError(batch)) = tx.send(Batch::new(letters)).await {
                    fail_records(&batch.records);
                    self.shared
                        .fail("the dead-letter queue stopped accepting records");
                }
                Vec::new()
            }
        }
    }
}

fn failure(
    stage: &'static str,
    component: &str,
    e: &TransformError,
    attempts: u32,
) -> StageFailure {
    StageFailure {
        stage,
        component: component.to_owned(),
        class: format!(
            "weir.{stage}.{}",
            if e.is_retriable() {
                "RetriesExhausted"
            } else {
                "Fatal"
            }
        ),
        message: e.message().to_owned(),
        attempts,
    }
}

async fn apply_one(
    stage: &TransformStage,
    record: &mut Record,
) -> Result<Flow, (TransformError, u32)> {
    let mut attempts = 1;
    loop {
        match stage.transform.apply(record) {
            Ok(flow) => return Ok(flow),
            Err(e) if e.is_retriable() && may_retry(&stage.options.retry, attempts) => {
                stage.metrics.retries.inc(1);
                stage.metrics.health.degraded(format!(
                    "retrying: {}",
                    weir_core::redact::urls(e.message())
                ));
                tokio::time::sleep(backoff(&stage.options.retry, attempts, None)).await;
                attempts += 1;
            }
            Err(e) => return Err((e, attempts)),
        }
    }
}

/// A batched stage: retriable records are retried (with backoff) on their own, and every
/// record's outcome is then taken in the original order, so a retry never reorders a batch.
async fn apply_batched(
    stage: &TransformStage,
    records: Vec<Record>,
    out: &mut Vec<Record>,
    failed: &mut Vec<(Record, StageFailure)>,
    discarded: &mut u64,
) {
    // Each record's final outcome and attempts, by its position in the batch.
    type Outcome = (Record, Result<Flow, TransformError>, u32);
    let mut done: Vec<Option<Outcome>> = (0..records.len()).map(|_| None).collect();
    let mut pending: Vec<(usize, Record)> = records.into_iter().enumerate().collect();
    let mut attempts = 1;
    loop {
        let (index, mut batch): (Vec<usize>, Vec<Record>) = pending.into_iter().unzip();
        let results = stage.transform.apply_batch(&mut batch).await;
        let mut retry = Vec::new();
        for ((i, rec), res) in index.into_iter().zip(batch).zip(results) {
            match res {
                Err(e) if e.is_retriable() && may_retry(&stage.options.retry, attempts) => {
                    retry.push((i, rec))
                }
                other => done[i] = Some((rec, other, attempts)),
            }
        }
        if retry.is_empty() {
            break;
        }
        stage.metrics.retries.inc(retry.len() as u64);
        stage.metrics.health.degraded(format!(
            "retrying {} record(s) after attempt {attempts}",
            retry.len()
        ));
        tokio::time::sleep(backoff(&stage.options.retry, attempts, None)).await;
        attempts += 1;
        pending = retry;
    }
    for (rec, res, attempts) in done.into_iter().flatten() {
        match res {
            Ok(Flow::Keep) => out.push(rec),
            Ok(Flow::Drop) => *discarded += 1,
            // The split records share the original's ack.
            Ok(Flow::Split(v)) => out.extend(v),
            Err(e) => failed.push((
                rec,
                failure(stage.transform.stage(), &stage.name, &e, attempts),
            )),
        }
    }
}

/// A per-record stage, in place: a kept record moves only when one before it left the batch,
/// so a batch the stage keeps whole is not copied (records are a few hundred bytes each).
async fn apply_each(
    stage: &TransformStage,
    mut records: Vec<Record>,
    failed: &mut Vec<(Record, StageFailure)>,
    discarded: &mut u64,
) -> Vec<Record> {
    // records[..kept] are kept; records[kept..i] were dropped or failed (and are left behind).
    let mut kept = 0;
    let mut i = 0;
    while i < records.len() {
        match apply_one(stage, &mut records[i]).await {
            Ok(Flow::Keep) => {
                if kept != i {
                    records.swap(kept, i);
                }
                kept += 1;
            }
            Ok(Flow::Drop) => *discarded += 1,
            Ok(Flow::Split(v)) => {
                // Rare: the rest of the batch goes into a new vector.
                let rest = records.split_off(i + 1);
                records.truncate(kept);
                let mut out = records;
                out.extend(v);
                for mut rec in rest {
                    match apply_one(stage, &mut rec).await {
                        Ok(Flow::Keep) => out.push(rec),
                        Ok(Flow::Drop) => *discarded += 1,
                        Ok(Flow::Split(v)) => out.extend(v),
                        Err((e, attempts)) => failed.push((
                            rec,
                            failure(stage.transform.stage(), &stage.name, &e, attempts),
                        )),
                    }
                }
                return out;
            }
            Err((e, attempts)) => failed.push((
                std::mem::take(&mut records[i]),
                failure(stage.transform.stage(), &stage.name, &e, attempts),
            )),
        }
        i += 1;
    }
    records.truncate(kept);
    records
}

/// Runs records through the stages in order; failed records follow each stage's `on_error`.
pub async fn apply_stages(
    stages: &[TransformStage],
    mut records: Vec<Record>,
    route: &FailureRoute,
) -> Vec<Record> {
    for stage in stages {
        let n = records.len() as u64;
        if n == 0 {
            break;
        }
        stage.metrics.received_events.inc(n);
        stage
            .metrics
            .received_bytes
            .inc(records.iter().map(|r| r.approx_size() as u64).sum());
        let mut failed = Vec::new();
        let mut discarded = 0u64;
        let mut out = if stage.transform.is_batched() {
            let mut out = Vec::with_capacity(records.len());
            apply_batched(stage, records, &mut out, &mut failed, &mut discarded).await;
            out
        } else {
            apply_each(stage, records, &mut failed, &mut discarded).await
        };
        stage.metrics.discarded_filtered.inc(discarded);
        // Through the batch: whatever was retried is over.
        stage.metrics.health.ok();
        let nfailed = failed.len() as u64;
        out.extend(route.route(stage.on_error, &stage.metrics, failed).await);
        route.shared.account(n, nfailed);
        stage.metrics.sent_events.inc(out.len() as u64);
        records = out;
    }
    records
}
