//! Loading pipeline files into runnable pipelines, and running several at once.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use weir_core::config::{
    ComponentSpec, ConfigErrors, OnError, PipelineSpec, load_path_partial, load_str_partial,
    process_env,
};
use weir_core::registry::{BuildScope, Built};
use weir_core::{ConfigError, Registry};

use crate::formats::{self, SchemaRegistryClient};
use weir_engine::metrics::{ComponentMetrics, MetricsRegistry};
use weir_engine::sink_driver::SinkStage;
use weir_engine::stages::TransformStage;
use weir_engine::topology::{Pipeline, PipelineFailed, PipelineParts};

/// Every built-in plugin. Each plugin crate's `link()` is called so the linker keeps the crate and
/// its `inventory` registrations.
pub fn builtin_registry() -> Result<Registry, weir_core::registry::DuplicatePlugin> {
    weir_sources::link();
    weir_transforms::link();
    weir_sinks::link();
    Registry::from_inventory()
}

/// Why pipelines could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is invalid (nothing was started).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// One or more pipelines failed.
    #[error("{}", .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Failed(Vec<PipelineFailed>),
}

/// `on_error: dlq` on any stage (pipeline transform, sink, or a sink's own transform) needs a
/// pipeline `dlq:` to send to.
fn check_dlq_exists(spec: &ComponentSpec, p: &PipelineSpec, errors: &mut Vec<ConfigError>) {
    if spec.options.on_error == Some(OnError::Dlq) && p.dlq.is_none() {
        errors.push(p.file.error(
            spec.location,
            format!("{}.on_error", spec.path),
            "`on_error: dlq` needs a pipeline `dlq:` sink",
        ));
    }
}

/// Builds one pipeline's components, collecting every error.
struct PipelineBuild<'a> {
    p: &'a PipelineSpec,
    plugins: &'a Registry,
    metrics: &'a MetricsRegistry,
    schemas: Option<Arc<SchemaRegistryClient>>,
    data_dir: Option<&'a Arc<Path>>,
    errors: Vec<ConfigError>,
    warnings: &'a mut Vec<ConfigError>,
    /// Converter errors, dropped when the registry itself is broken: they would only repeat
    /// that it is missing.
    converter_errors: Vec<ConfigError>,
}

impl PipelineBuild<'_> {
    fn build_component(&mut self, spec: &ComponentSpec) -> Result<Built, ConfigError> {
        let (p, metrics) = (self.p, self.metrics);
        let scope = BuildScope {
            file: &p.file,
            pipeline: &p.name,
            data_dir: self.data_dir,
            telemetry: metrics.telemetry(),
        };
        self.plugins.build(spec, scope, self.warnings)
    }

    fn component_metrics(&self, spec: &ComponentSpec) -> Arc<ComponentMetrics> {
        self.metrics.component(
            &self.p.name,
            &spec.name,
            spec.component_kind(),
            &spec.type_name,
        )
    }

    fn transform(&mut self, spec: &ComponentSpec) -> Option<TransformStage> {
        let p = self.p;
        check_dlq_exists(spec, p, &mut self.errors);
        match self.build_component(spec) {
            Ok(Built::Transform(t)) => Some(TransformStage {
                name: Arc::from(spec.name.as_str()),
                transform: t,
                options: spec.options,
                on_error: p.on_error(spec),
                metrics: self.component_metrics(spec),
            }),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn sink(&mut self, spec: &ComponentSpec) -> Option<SinkStage> {
        let p = self.p;
        let mut transforms: Vec<TransformStage> = spec
            .transforms
            .iter()
            .filter_map(|t| self.transform(t))
            .collect();
        match formats::sink_stage(spec, p, &self.schemas, self.metrics) {
            Ok(encoder) => transforms.extend(encoder),
            Err(e) => self.converter_errors.push(e),
        }
        check_dlq_exists(spec, p, &mut self.errors);
        match self.build_component(spec) {
            Ok(Built::Sink(s)) => Some(SinkStage {
                name: Arc::from(spec.name.as_str()),
                sink: s,
                options: spec.options,
                on_error: if spec.is_dlq {
                    OnError::Stop
                } else {
                    p.on_error(spec)
                },
                transforms,
                metrics: self.component_metrics(spec),
            }),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn pipeline(self) -> Result<BuiltPipeline, Vec<ConfigError>> {
        self.pipeline_with(None)
    }

    /// Builds the pipeline; with `feed`, its source is replaced and stages are put in front of
    /// its transforms (after the source's converter).
    fn pipeline_with(mut self, feed: Option<Feed>) -> Result<BuiltPipeline, Vec<ConfigError>> {
        let p = self.p;
        let registry_ok = match formats::pipeline_registry(p) {
            Ok(s) => {
                self.schemas = s;
                true
            }
            Err(e) => {
                self.errors.push(e);
                false
            }
        };
        let decoder = formats::source_stage(p, &self.schemas, self.metrics).unwrap_or_else(|e| {
            self.converter_errors.push(e);
            None
        });
        let (source, front) = match feed {
            Some(f) => (Some(f.source), f.front),
            None => match self.build_component(&p.source) {
                Ok(Built::Source(s)) => (Some(s), Vec::new()),
                Ok(_) => unreachable!("registry returns the kind asked for"),
                Err(e) => {
                    self.errors.push(e);
                    (None, Vec::new())
                }
            },
        };
        let mut transforms: Vec<_> = decoder.into_iter().collect();
        transforms.extend(front);
        for t in &p.transforms {
            transforms.extend(self.transform(t));
        }
        let mut sinks = Vec::new();
        for s in &p.sinks {
            sinks.extend(self.sink(s));
        }
        let dlq = p.dlq.as_ref().and_then(|d| self.sink(d));
        if registry_ok {
            self.errors.append(&mut self.converter_errors);
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let pipeline = Pipeline::from(PipelineParts {
            name: p.name.clone(),
            source: (
                Arc::from(p.source.name.as_str()),
                source.expect("no errors"),
            ),
            source_metrics: self.component_metrics(&p.source),
            budget_health: self
                .metrics
                .telemetry()
                .health(&p.name, weir_engine::topology::BUDGET),
            transforms,
            sinks,
            dlq,
            budget: p.error_budget,
            settings: p.settings,
        });
        Ok(BuiltPipeline {
            pipeline,
            schemas: self.schemas,
        })
    }
}

/// What replaces a pipeline's source when records are fed into its first stage from elsewhere
/// (`weir dlq redrive`): the source, and stages that run before the pipeline's transforms.
pub struct Feed {
    /// The source in place of the pipeline's own.
    pub source: Box<dyn weir_core::Source>,
    /// Stages before the pipeline's transforms (after the source's converter, if it has one).
    pub front: Vec<TransformStage>,
}

/// Builds one pipeline from its spec with its source replaced by `feed`: the same transforms,
/// sinks, dead-letter queue, budget and settings as the pipeline itself. Nothing connects.
pub fn build_fed(
    spec: &PipelineSpec,
    env: BuildEnv<'_>,
    feed: Feed,
) -> Result<BuiltPipeline, ConfigErrors> {
    let mut warnings = Vec::new();
    let build = PipelineBuild {
        p: spec,
        plugins: env.registry,
        metrics: env.metrics,
        schemas: None,
        data_dir: env.data_dir,
        errors: Vec::new(),
        warnings: &mut warnings,
        converter_errors: Vec::new(),
    };
    build.pipeline_with(Some(feed)).map_err(ConfigErrors)
}

/// Builds transforms written in `file` (not in a pipeline) as stages of `pipeline`: a failing
/// record follows the stage's `on_error`, `stop` by default. Errors are located in `file`.
pub fn build_transform_stages(
    file: &weir_core::config::SourceFile,
    specs: &[ComponentSpec],
    pipeline: &Arc<str>,
    env: BuildEnv<'_>,
) -> Result<Vec<TransformStage>, ConfigErrors> {
    let scope = BuildScope {
        file,
        pipeline,
        data_dir: env.data_dir,
        telemetry: env.metrics.telemetry(),
    };
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut stages = Vec::new();
    for spec in specs {
        if spec.options.on_error == Some(OnError::Dlq) {
            errors.push(file.error(
                spec.location,
                format!("{}.on_error", spec.path),
                "`on_error: dlq` is not available here: a letter whose fix-up fails stays in the dead-letter queue; use `stop` (the default) or `drop`",
            ));
            continue;
        }
        match env.registry.build(spec, scope, &mut warnings) {
            Ok(Built::Transform(t)) => stages.push(TransformStage {
                name: Arc::from(spec.name.as_str()),
                transform: t,
                options: spec.options,
                on_error: spec.options.on_error.unwrap_or(OnError::Stop),
                metrics: env.metrics.component(
                    pipeline,
                    &spec.name,
                    spec.component_kind(),
                    &spec.type_name,
                ),
            }),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(stages)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// A pipeline built from its spec, with the schema registry client its converters share (for
/// the schema catalogue).
pub struct BuiltPipeline {
    /// The pipeline, ready to run.
    pub pipeline: Pipeline,
    /// Its registry client, when it has a `schema_registry:`.
    pub schemas: Option<Arc<SchemaRegistryClient>>,
}

/// What building pipelines needs besides their specs.
#[derive(Clone, Copy)]
pub struct BuildEnv<'a> {
    /// The plugins.
    pub registry: &'a Registry,
    /// Where components register their counters.
    pub metrics: &'a MetricsRegistry,
    /// Where components keep state between runs (the `file` source's checkpoints).
    pub data_dir: Option<&'a Arc<Path>>,
}

/// Pipelines built from specs, and the warnings found on the way.
pub struct BuildOutput {
    /// The pipelines, in spec order.
    pub pipelines: Vec<BuiltPipeline>,
    /// Problems that do not stop a pipeline (a pattern that never matches), located.
    pub warnings: Vec<ConfigError>,
}

/// Builds every component of every pipeline, collecting all errors (with `errors` already found
/// while loading). Nothing connects.
pub fn build_specs(
    specs: &[PipelineSpec],
    mut errors: Vec<ConfigError>,
    env: BuildEnv<'_>,
) -> Result<BuildOutput, ConfigErrors> {
    let mut pipelines = Vec::new();
    let mut warnings = Vec::new();
    for p in specs {
        let build = PipelineBuild {
            p,
            plugins: env.registry,
            metrics: env.metrics,
            schemas: None,
            data_dir: env.data_dir,
            errors: Vec::new(),
            warnings: &mut warnings,
            converter_errors: Vec::new(),
        };
        match build.pipeline() {
            Ok(pipeline) => pipelines.push(pipeline),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(BuildOutput {
            pipelines,
            warnings,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Builds pipelines from specs with fresh counters and no data folder (tests, embedders).
pub fn build(
    specs: Vec<PipelineSpec>,
    registry: &Registry,
    metrics: &MetricsRegistry,
) -> Result<Vec<Pipeline>, ConfigErrors> {
    let env = BuildEnv {
        registry,
        metrics,
        data_dir: None,
    };
    Ok(build_specs(&specs, Vec::new(), env)?
        .pipelines
        .into_iter()
        .map(|b| b.pipeline)
        .collect())
}

/// A set of pipelines built from YAML, with shared metrics.
pub struct Runtime {
    pipelines: Vec<BuiltPipeline>,
    metrics: MetricsRegistry,
    warnings: Vec<ConfigError>,
}

impl Runtime {
    fn from_loaded(
        (specs, errors): (Vec<PipelineSpec>, Vec<ConfigError>),
        registry: &Registry,
        data_dir: Option<Arc<Path>>,
    ) -> Result<Self, ConfigErrors> {
        let metrics = MetricsRegistry::default();
        let env = BuildEnv {
            registry,
            metrics: &metrics,
            data_dir: data_dir.as_ref(),
        };
        let out = build_specs(&specs, errors, env)?;
        Ok(Runtime {
            pipelines: out.pipelines,
            metrics,
            warnings: out.warnings,
        })
    }

    /// Loads and builds a file or directory of pipelines (environment from the process).
    pub fn from_path(path: &Path, registry: &Registry) -> Result<Self, ConfigErrors> {
        Self::from_path_in(path, registry, None)
    }

    /// Like [`Runtime::from_path`], with a folder where components keep state between runs
    /// (the `file` source's checkpoints).
    pub fn from_path_in(
        path: &Path,
        registry: &Registry,
        data_dir: Option<Arc<Path>>,
    ) -> Result<Self, ConfigErrors> {
        Self::from_loaded(load_path_partial(path, &process_env), registry, data_dir)
    }

    /// Loads and builds pipelines from YAML text.
    pub fn from_yaml_str(
        name: &str,
        yaml: &str,
        registry: &Registry,
    ) -> Result<Self, ConfigErrors> {
        Self::from_loaded(load_str_partial(name, yaml, &process_env), registry, None)
    }

    /// Pipelines built in code.
    pub fn from_pipelines(pipelines: Vec<Pipeline>, metrics: MetricsRegistry) -> Self {
        Runtime {
            pipelines: pipelines
                .into_iter()
                .map(|pipeline| BuiltPipeline {
                    pipeline,
                    schemas: None,
                })
                .collect(),
            metrics,
            warnings: Vec::new(),
        }
    }

    /// Problems found while building that do not stop the pipelines (a pattern that can never
    /// match), located like errors.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The counters of every component.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    /// A live view of the schemas every pipeline's converters have fetched, with counters; it
    /// stays valid while the pipelines run (for the operations API).
    #[cfg(feature = "avro")]
    pub fn schema_catalog(&self) -> formats::SchemaCatalog {
        formats::SchemaCatalog(
            self.pipelines
                .iter()
                .filter_map(|p| Some((Arc::from(p.pipeline.name()), p.schemas.clone()?)))
                .collect(),
        )
    }

    /// Pipeline names.
    pub fn pipeline_names(&self) -> Vec<&str> {
        self.pipelines.iter().map(|p| p.pipeline.name()).collect()
    }

    /// Runs every pipeline until all finish. A failing pipeline stops the others (they drain and
    /// commit what they delivered), so a problem is never hidden behind a half-running process.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut set = tokio::task::JoinSet::new();
        for p in self.pipelines {
            let token = shutdown.clone();
            set.spawn(async move {
                let r = p.pipeline.run(token.clone()).await;
                if r.is_err() {
                    token.cancel();
                }
                r
            });
        }
        let mut failures = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(f)) => failures.push(f),
                Err(e) => failures.push(PipelineFailed {
                    pipeline: "?".into(),
                    reason: format!("pipeline task crashed: {e}"),
                    kind: weir_engine::FailureKind::Fatal,
                }),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RunError::Failed(failures))
        }
    }
}
