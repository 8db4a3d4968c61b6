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

/// State shared by every task of one running pipeline.
pub struct RunState {
    /// Pipeline name.
    pub pipeline: Arc<str>,
    /// Cancelled to stop reading (graceful stop, or failure).
    pub stop: CancellationToken,
    failure: Mutex<Option<String>>,
    /// Set when the pipeline stopped because a sink's output was closed (not a failure of the
    /// records: `weir run … | head`).
    output_closed: std::sync::atomic::AtomicBool,
    budget: Option<Budget>,
}

impl RunState {
    /// RunState state.
    pub fn new(pipeline: Arc<str>, stop: CancellationToken, budget: Option<Budget>) -> Self {
        RunState {
            pipeline,
            stop,
            failure: Mutex::new(None),
            output_closed: Default::default(),
            budget,
        }
    }

    /// Fails the pipeline (the first reason wins) and starts a graceful stop.
    pub fn fail(&self, reason: impl Into<String>) {
        // Whatever a component reported, no URL credential reaches the log or the status.
        let reason = weir_core::redact::urls(&reason.into()).into_owned();
        let mut f = self.failure.lock().expect("failure lock");
        if f.is_none() {
            tracing::error!(pipeline = %self.pipeline, "{reason}; stopping the pipeline");
            *f = Some(reason);
        }
        self.stop.cancel();
    }

    /// Stops the pipeline because a sink's output is gone for good (standard output closed): the
    /// records it did not write stay uncommitted, nothing is dead-lettered.
    pub fn stop_output_closed(&self, component: &str, why: &str) {
        let mut f = self.failure.lock().expect("failure lock");
        if f.is_none() {
            tracing::info!(pipeline = %self.pipeline, component, "{why}; stopping the pipeline (records not written stay uncommitted)");
            *f = Some(format!("sink `{component}`: {why}"));
            self.output_closed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.stop.cancel();
    }

    /// True when the pipeline stopped because a sink's output was closed.
    pub fn output_closed(&self) -> bool {
        self.output_closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the pipeline failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Accounts outcomes against the error budget.
    pub fn account(&self, total: u64, failed: u64) {
        if let Some(b) = &self.budget
            && total > 0
            && let Some(reason) = b.record(total, failed)
        {
            self.fail(reason);
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
        ComponentMetrics::add(&metrics.errors, n);
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
                ComponentMetrics::add(&metrics.discarded_records, n);
                Vec::new()
            }
            OnError::Stop => {
                let records: Vec<Record> = failed.into_iter().map(|(r, _)| r).collect();
                fail_records(&records);
                self.shared.fail(format!("{summary} (on_error: stop)"));
                Vec::new()
            }
            OnError::Dlq => {
                let Some(tx) = &self.dlq else {
                    let records: Vec<Record> = failed.into_iter().map(|(r, _)| r).collect();
                    fail_records(&records);
                    self.shared.fail(format!(
                        "{summary}; on_error is dlq but the pipeline has no dlq"
                    ));
                    return Vec::new();
                };
                tracing::warn!(pipeline = %self.shared.pipeline, "{summary}; sent to the dead-letter queue");
                ComponentMetrics::add(&metrics.dead_lettered_records, n);
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
        class: if e.is_retriable() {
            "weir.transform.RetriesExhausted"
        } else {
            "weir.transform.Fatal"
        }
        .into(),
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
                ComponentMetrics::add(&stage.metrics.retries, 1);
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
        ComponentMetrics::add(&stage.metrics.retries, retry.len() as u64);
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
            Err(e) => failed.push((rec, failure("transform", &stage.name, &e, attempts))),
        }
    }
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
        ComponentMetrics::add(&stage.metrics.received_records, n);
        let mut out = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        let mut discarded = 0u64;
        if stage.transform.is_batched() {
            apply_batched(stage, records, &mut out, &mut failed, &mut discarded).await;
        } else {
            for mut rec in records {
                match apply_one(stage, &mut rec).await {
                    Ok(Flow::Keep) => out.push(rec),
                    Ok(Flow::Drop) => discarded += 1,
                    Ok(Flow::Split(v)) => out.extend(v),
                    Err((e, attempts)) => {
                        failed.push((rec, failure("transform", &stage.name, &e, attempts)))
                    }
                }
            }
        }
        ComponentMetrics::add(&stage.metrics.discarded_records, discarded);
        let nfailed = failed.len() as u64;
        out.extend(route.route(stage.on_error, &stage.metrics, failed).await);
        route.shared.account(n, nfailed);
        ComponentMetrics::add(&stage.metrics.sent_records, out.len() as u64);
        records = out;
    }
    records
}
