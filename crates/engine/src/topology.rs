//! A pipeline's running shape: source → bounded channel → transforms → fan-out → one bounded
//! channel and driver per sink (→ DLQ), with graceful shutdown bounded by a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_core::config::{ErrorBudget, OnError, PipelineSettings, StageOptions};
use weir_core::{
    Batch, ComponentId, Sink, SinkError, Source, SourceContext, SourceError, Transform,
};

use crate::handle::{EngineStatus, Phase, PipelineHandle};
use weir_core::telemetry::Health;

use crate::budget::Budget;
use crate::metrics::{ComponentMetrics, MetricsRegistry};
use crate::sink_driver::{SinkStage, run_sink};
use crate::stages::{FailureRoute, RunState, TransformStage, apply_stages, fail_records};

/// A pipeline ready to run.
pub struct Pipeline {
    name: Arc<str>,
    source: Box<dyn Source>,
    source_name: Arc<str>,
    source_metrics: Arc<ComponentMetrics>,
    transforms: Vec<TransformStage>,
    sinks: Vec<SinkStage>,
    dlq: Option<SinkStage>,
    budget: Option<ErrorBudget>,
    budget_health: Health,
    settings: PipelineSettings,
}

/// Everything a pipeline is made of, for the runtime that builds pipelines from YAML
/// (embedders use [`Pipeline::builder`]).
pub struct PipelineParts {
    /// Pipeline name.
    pub name: Arc<str>,
    /// The source and its component name.
    pub source: (Arc<str>, Box<dyn Source>),
    /// The source's counters.
    pub source_metrics: Arc<ComponentMetrics>,
    /// Stages every record goes through, in order.
    pub transforms: Vec<TransformStage>,
    /// The sinks; every record goes to each.
    pub sinks: Vec<SinkStage>,
    /// The dead-letter sink.
    pub dlq: Option<SinkStage>,
    /// Stop past this failure share.
    pub budget: Option<ErrorBudget>,
    /// Degraded while the budget is being spent (`Telemetry::health(pipeline, BUDGET)`).
    pub budget_health: Health,
    /// Pipeline settings.
    pub settings: PipelineSettings,
}

/// The name the error budget's health is registered under (not a valid component name, so it
/// never collides with one).
pub const BUDGET: &str = "(error budget)";

impl From<PipelineParts> for Pipeline {
    fn from(p: PipelineParts) -> Self {
        Pipeline {
            name: p.name,
            source_name: p.source.0,
            source: p.source.1,
            source_metrics: p.source_metrics,
            transforms: p.transforms,
            sinks: p.sinks,
            dlq: p.dlq,
            budget: p.budget,
            budget_health: p.budget_health,
            settings: p.settings,
        }
    }
}

/// What kind of failure stopped a pipeline, which decides what a supervisor does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Retrying will not help until an operator changes something: a record that fails for
    /// good with `on_error: stop`, the error budget exhausted, bad credentials, a crash.
    Fatal,
    /// It may work again by itself: retries exhausted, a broker or DLQ unreachable, the
    /// shutdown deadline passed. A supervisor restarts it with backoff.
    Transient,
    /// A sink's output was closed for good (`weir run … | head`): not a failure of the
    /// records; the CLI exits 0, as command-line tools do on a broken pipe.
    OutputClosed,
}

/// Why a pipeline stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{pipeline}` failed: {reason}")]
pub struct PipelineFailed {
    /// Pipeline name.
    pub pipeline: String,
    /// What happened.
    pub reason: String,
    /// Fatal, transient, or an output that closed.
    pub kind: FailureKind,
}

impl Pipeline {
    /// Starts building a pipeline in code.
    pub fn builder(name: &str) -> PipelineBuilder {
        PipelineBuilder {
            name: Arc::from(name),
            metrics: MetricsRegistry::default(),
            ..Default::default()
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until the source ends and everything is delivered, or until `shutdown` is cancelled
    /// and in-flight work drains (bounded by `settings.shutdown_timeout`).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PipelineFailed> {
        let mut handle = self.start();
        let stop = handle.stopper();
        tokio::select! {
            r = handle.wait() => return r,
            _ = shutdown.cancelled() => stop.cancel(),
        }
        handle.wait().await
    }

    /// Starts the pipeline on its own task and returns its handle: its status, pause and resume,
    /// a graceful stop. The pipeline has its own stop token, so stopping or failing it leaves
    /// every other pipeline alone.
    pub fn start(self) -> PipelineHandle {
        let stop = CancellationToken::new();
        let (paused_tx, paused_rx) = watch::channel(false);
        let (status_tx, status_rx) = watch::channel(EngineStatus::new(Phase::Starting, None));
        let name = self.name.clone();
        let task = tokio::spawn(self.execute(stop.clone(), paused_rx, status_tx));
        PipelineHandle::new(name, stop, paused_tx, status_rx, task)
    }

    async fn execute(
        self,
        stop: CancellationToken,
        paused: watch::Receiver<bool>,
        status: watch::Sender<EngineStatus>,
    ) -> Result<(), PipelineFailed> {
        let result = self.drive(stop, paused.clone(), &status).await;
        let phase = if result.is_ok() {
            Phase::Stopped
        } else {
            Phase::Failed
        };
        status.send_replace(EngineStatus::new(phase, result.clone().err()));
        result
    }

    async fn drive(
        self,
        stop: CancellationToken,
        paused: watch::Receiver<bool>,
        status: &watch::Sender<EngineStatus>,
    ) -> Result<(), PipelineFailed> {
        let Pipeline {
            name,
            source,
            source_name,
            source_metrics,
            transforms,
            sinks,
            dlq,
            budget,
            budget_health,
            settings,
        } = self;
        for s in sinks.iter().chain(dlq.as_ref()) {
            if let Err(e) = s.sink.open().await {
                let kind = match e {
                    SinkError::Retriable { .. } => FailureKind::Transient,
                    _ => FailureKind::Fatal,
                };
                return Err(PipelineFailed {
                    pipeline: name.to_string(),
                    reason: format!("sink `{}` cannot start: {e}", s.name),
                    kind,
                });
            }
        }
        if settings.healthcheck {
            healthchecks(&name, &sinks, dlq.as_ref()).await;
        }
        let shared = Arc::new(RunState::new(
            name.clone(),
            stop.clone(),
            budget.map(Budget::new),
            budget_health,
        ));
        let cap = settings.buffer_batches;
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();

        let (dlq_tx, dlq_task) = match dlq {
            Some(stage) => {
                let (tx, rx) = mpsc::channel::<Batch>(cap);
                let route = FailureRoute {
                    dlq: None,
                    shared: shared.clone(),
                };
                (
                    Some(tx),
                    Some(tokio::spawn(run_sink(stage, rx, route, true))),
                )
            }
            None => (None, None),
        };
        let route = FailureRoute {
            dlq: dlq_tx.clone(),
            shared: shared.clone(),
        };
        drop(dlq_tx);

        let mut sink_txs = Vec::with_capacity(sinks.len());
        for stage in sinks {
            let (tx, rx) = mpsc::channel::<Batch>(cap);
            sink_txs.push(tx);
            tasks.push(tokio::spawn(run_sink(stage, rx, route.clone(), false)));
        }

        let (src_tx, src_rx) = mpsc::channel::<Batch>(cap);
        tasks.push(tokio::spawn(transform_task(
            src_rx,
            transforms,
            sink_txs,
            route,
            source_metrics,
            paused.clone(),
            stop.clone(),
        )));

        let id = ComponentId {
            pipeline: name.clone(),
            component: source_name.clone(),
        };
        let (cx, acker) = SourceContext::new(id, src_tx, stop.clone());
        let source_shared = shared.clone();
        let source_task = tokio::spawn(async move {
            if let Err(e) = source.run(cx).await {
                let kind = match e {
                    SourceError::Other(_) => FailureKind::Fatal,
                    _ => FailureKind::Transient,
                };
                source_shared.fail_as(kind, format!("source `{source_name}` failed: {e}"));
            }
        });

        let mut handles = vec![source_task];
        handles.extend(tasks);
        handles.extend(dlq_task);
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        let all = async {
            for h in handles {
                if let Err(e) = h.await
                    && e.is_panic()
                {
                    shared.fail_as(FailureKind::Fatal, format!("a pipeline task panicked: {e}"));
                }
            }
        };
        tokio::pin!(all);
        let publish = publish_phase(paused, stop.clone(), status);
        tokio::pin!(publish);
        let deadline = Duration::from(settings.shutdown_timeout);
        let finished = loop {
            tokio::select! {
                _ = &mut all => break true,
                _ = async { stop.cancelled().await; tokio::time::sleep(deadline).await } => break false,
                _ = &mut publish => {}
            }
        };
        if !finished {
            // Everything still in flight is reported errored before it is dropped, so no source
            // commits past it; it is replayed after a restart.
            acker.abandon();
            for a in &aborts {
                a.abort();
            }
            shared.fail(format!(
                "shutdown did not finish within {}; in-flight records were abandoned uncommitted and will be replayed",
                settings.shutdown_timeout
            ));
        }
        match shared.failure() {
            Some((reason, kind)) => Err(PipelineFailed {
                pipeline: name.to_string(),
                reason,
                kind,
            }),
            None => Ok(()),
        }
    }
}

/// Publishes running, paused and stopping as they happen; never returns.
async fn publish_phase(
    mut paused: watch::Receiver<bool>,
    stop: CancellationToken,
    status: &watch::Sender<EngineStatus>,
) {
    let mut stopping = false;
    loop {
        let phase = if stopping {
            Phase::Stopping
        } else if *paused.borrow_and_update() {
            Phase::Paused
        } else {
            Phase::Running
        };
        status.send_if_modified(|s| {
            if s.phase == phase {
                return false;
            }
            *s = EngineStatus::new(phase, None);
            true
        });
        if stopping {
            std::future::pending::<()>().await;
        }
        tokio::select! {
            _ = stop.cancelled() => stopping = true,
            r = paused.changed() => {
                if r.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Runs every sink's health check, one after another (10 s each). A failure is logged, not fatal: the
/// sink's retries take over once records flow (docs/decisions.md #12).
async fn healthchecks(pipeline: &str, sinks: &[SinkStage], dlq: Option<&SinkStage>) {
    let checks = sinks.iter().chain(dlq).map(|s| async move {
        match tokio::time::timeout(Duration::from_secs(10), s.sink.healthcheck()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(pipeline, component = %s.name, "health check failed: {e}; starting anyway, writes will be retried");
                s.metrics.health.degraded(format!("health check failed: {}", weir_core::redact::urls(&e.to_string())));
            }
            Err(_) => {
                tracing::warn!(pipeline, component = %s.name, "health check timed out after 10s; starting anyway");
                s.metrics.health.degraded("health check timed out after 10s");
            }
        }
    });
    for c in checks {
        c.await;
    }
}

async fn transform_task(
    mut rx: mpsc::Receiver<Batch>,
    transforms: Vec<TransformStage>,
    sink_txs: Vec<mpsc::Sender<Batch>>,
    route: FailureRoute,
    source_metrics: Arc<ComponentMetrics>,
    mut paused: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        // Paused: take nothing from the source, which then waits (the Kafka source pauses its
        // partitions and stays in its group). A stop drains whatever is queued.
        while *paused.borrow_and_update() && !stop.is_cancelled() {
            tokio::select! {
                r = paused.changed() => if r.is_err() { break },
                _ = stop.cancelled() => {}
            }
        }
        let Some(batch) = rx.recv().await else {
            break;
        };
        let bytes: u64 = batch.records.iter().map(|r| r.approx_size() as u64).sum();
        source_metrics.received_events.inc(batch.len() as u64);
        source_metrics.received_bytes.inc(bytes);
        source_metrics.sent_events.inc(batch.len() as u64);
        source_metrics.sent_bytes.inc(bytes);
        let mut records = apply_stages(&transforms, batch.records, &route).await;
        if records.is_empty() {
            continue;
        }
        let last = sink_txs.len() - 1;
        for (i, tx) in sink_txs.iter().enumerate() {
            let batch = if i == last {
                Batch::new(std::mem::take(&mut records))
            } else {
                Batch::new(records.clone())
            };
            if let Err(mpsc::error::SendError(b)) = tx.send(batch).await {
                fail_records(&b.records);
                route.shared.fail("a sink stopped accepting records");
            }
        }
    }
}

/// A pipeline built in code is missing a part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuilderError {
    /// No [`PipelineBuilder::source`].
    #[error("a pipeline needs a source")]
    NoSource,
    /// No [`PipelineBuilder::sink`].
    #[error("a pipeline needs at least one sink")]
    NoSinks,
}

/// Builds a pipeline in code (embedding); YAML pipelines are built by `weir-runtime`.
#[derive(Default)]
pub struct PipelineBuilder {
    name: Arc<str>,
    source: Option<(Arc<str>, Box<dyn Source>)>,
    transforms: Vec<(Arc<str>, Arc<dyn Transform>, StageOptions)>,
    sinks: Vec<(Arc<str>, Arc<dyn Sink>, StageOptions)>,
    dlq: Option<(Arc<str>, Arc<dyn Sink>, StageOptions)>,
    budget: Option<ErrorBudget>,
    settings: PipelineSettings,
    metrics: MetricsRegistry,
}

impl PipelineBuilder {
    /// The source.
    pub fn source(mut self, name: &str, source: impl Source + 'static) -> Self {
        self.source = Some((Arc::from(name), Box::new(source)));
        self
    }
    /// Appends a transform with default options.
    pub fn transform(self, name: &str, t: impl Transform + 'static) -> Self {
        self.transform_with(name, Arc::new(t), StageOptions::default())
    }
    /// Appends a transform with options.
    pub fn transform_with(
        mut self,
        name: &str,
        t: Arc<dyn Transform>,
        options: StageOptions,
    ) -> Self {
        self.transforms.push((Arc::from(name), t, options));
        self
    }
    /// Adds a sink with default options.
    pub fn sink(self, name: &str, s: impl Sink + 'static) -> Self {
        self.sink_with(name, Arc::new(s), StageOptions::default())
    }
    /// Adds a sink with options.
    pub fn sink_with(mut self, name: &str, s: Arc<dyn Sink>, options: StageOptions) -> Self {
        self.sinks.push((Arc::from(name), s, options));
        self
    }
    /// Sets the dead-letter sink.
    pub fn dlq(mut self, name: &str, s: Arc<dyn Sink>, options: StageOptions) -> Self {
        self.dlq = Some((Arc::from(name), s, options));
        self
    }
    /// Sets the error budget.
    pub fn error_budget(mut self, b: ErrorBudget) -> Self {
        self.budget = Some(b);
        self
    }
    /// Sets pipeline settings.
    pub fn settings(mut self, s: PipelineSettings) -> Self {
        self.settings = s;
        self
    }
    /// Counts into this metrics registry.
    pub fn metrics(mut self, m: MetricsRegistry) -> Self {
        self.metrics = m;
        self
    }

    /// Finishes the pipeline; it needs a source and at least one sink.
    pub fn build(self) -> Result<Pipeline, BuilderError> {
        let (source_name, source) = self.source.ok_or(BuilderError::NoSource)?;
        if self.sinks.is_empty() {
            return Err(BuilderError::NoSinks);
        }
        let default_policy = if self.dlq.is_some() {
            OnError::Dlq
        } else {
            OnError::Stop
        };
        let m = &self.metrics;
        let p = &self.name;
        Ok(Pipeline {
            source_metrics: m.component(p, &source_name, "source", "code"),
            source_name,
            source,
            transforms: self
                .transforms
                .into_iter()
                .map(|(name, transform, options)| TransformStage {
                    metrics: m.component(p, &name, "transform", "code"),
                    name,
                    transform,
                    options,
                    on_error: options.on_error.unwrap_or(default_policy),
                })
                .collect(),
            sinks: self
                .sinks
                .into_iter()
                .map(|(name, sink, options)| SinkStage {
                    metrics: m.component(p, &name, "sink", "code"),
                    name,
                    sink,
                    options,
                    on_error: options.on_error.unwrap_or(default_policy),
                    transforms: Vec::new(),
                })
                .collect(),
            dlq: self.dlq.map(|(name, sink, options)| SinkStage {
                metrics: m.component(p, &name, "dlq", "code"),
                name,
                sink,
                options,
                on_error: OnError::Stop,
                transforms: Vec::new(),
            }),
            budget: self.budget,
            budget_health: m.telemetry().health(p, BUDGET),
            settings: self.settings,
            name: self.name,
        })
    }
}
