//! A pipeline's running shape: source → bounded channel → transforms → fan-out → one bounded
//! channel and driver per sink (→ DLQ), with graceful shutdown bounded by a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_core::config::{ErrorBudget, OnError, PipelineSettings, StageOptions};
use weir_core::{Batch, ComponentId, Sink, Source, SourceContext, Transform};

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
    /// Pipeline settings.
    pub settings: PipelineSettings,
}

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
            settings: p.settings,
        }
    }
}

/// Why a pipeline stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{pipeline}` failed: {reason}")]
pub struct PipelineFailed {
    /// Pipeline name.
    pub pipeline: String,
    /// What happened.
    pub reason: String,
    /// The pipeline stopped because a sink's output was closed (`weir run … | head`), not
    /// because records failed; the CLI exits 0 then, as command-line tools do on a broken pipe.
    pub output_closed: bool,
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
        let Pipeline {
            name,
            source,
            source_name,
            source_metrics,
            transforms,
            sinks,
            dlq,
            budget,
            settings,
        } = self;
        if settings.healthcheck {
            healthchecks(&name, &sinks, dlq.as_ref()).await;
        }
        let stop = shutdown.child_token();
        let shared = Arc::new(RunState::new(
            name.clone(),
            stop.clone(),
            budget.map(Budget::new),
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
        )));

        let id = ComponentId {
            pipeline: name.clone(),
            component: source_name.clone(),
        };
        let (cx, acker) = SourceContext::new(id, src_tx, stop.clone());
        let source_shared = shared.clone();
        let source_task = tokio::spawn(async move {
            if let Err(e) = source.run(cx).await {
                source_shared.fail(format!("source `{source_name}` failed: {e}"));
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
                    shared.fail(format!("a pipeline task panicked: {e}"));
                }
            }
        };
        tokio::pin!(all);
        let deadline = Duration::from(settings.shutdown_timeout);
        let finished = tokio::select! {
            _ = &mut all => true,
            _ = async { stop.cancelled().await; tokio::time::sleep(deadline).await } => false,
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
            return Err(PipelineFailed {
                pipeline: name.to_string(),
                reason: shared.failure().unwrap_or_default(),
                output_closed: false,
            });
        }
        match shared.failure() {
            Some(reason) => Err(PipelineFailed {
                pipeline: name.to_string(),
                reason,
                output_closed: shared.output_closed(),
            }),
            None => Ok(()),
        }
    }
}

/// Runs every sink's health check, one after another (10 s each). A failure is logged, not fatal: the
/// sink's retries take over once records flow (docs/decisions.md #12).
async fn healthchecks(pipeline: &str, sinks: &[SinkStage], dlq: Option<&SinkStage>) {
    let checks = sinks.iter().chain(dlq).map(|s| async move {
        match tokio::time::timeout(Duration::from_secs(10), s.sink.healthcheck()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(pipeline, component = %s.name, "health check failed: {e}; starting anyway, writes will be retried"),
            Err(_) => tracing::warn!(pipeline, component = %s.name, "health check timed out after 10s; starting anyway"),
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
) {
    while let Some(batch) = rx.recv().await {
        ComponentMetrics::add(&source_metrics.sent_records, batch.len() as u64);
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
            source_metrics: m.component(p, &source_name, "source"),
            source_name,
            source,
            transforms: self
                .transforms
                .into_iter()
                .map(|(name, transform, options)| TransformStage {
                    metrics: m.component(p, &name, "transform"),
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
                    metrics: m.component(p, &name, "sink"),
                    name,
                    sink,
                    options,
                    on_error: options.on_error.unwrap_or(default_policy),
                    transforms: Vec::new(),
                })
                .collect(),
            dlq: self.dlq.map(|(name, sink, options)| SinkStage {
                metrics: m.component(p, &name, "dlq"),
                name,
                sink,
                options,
                on_error: OnError::Stop,
                transforms: Vec::new(),
            }),
            budget: self.budget,
            settings: self.settings,
            name: self.name,
        })
    }
}
