//! Loading pipeline files into runnable pipelines, and running several at once.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use weir_core::config::{
    ComponentSpec, ConfigErrors, OnError, PipelineSpec, load_path_partial, load_str_partial,
    process_env,
};
use weir_core::registry::Built;
use weir_core::{ConfigError, Registry};

use crate::formats::{self, Registry as SchemaRegistry};
use crate::metrics::MetricsRegistry;
use crate::sink_driver::SinkStage;
use crate::stages::TransformStage;
use crate::topology::{Pipeline, PipelineFailed};

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

/// A set of pipelines built from YAML, with shared metrics.
pub struct Runtime {
    pipelines: Vec<Pipeline>,
    metrics: MetricsRegistry,
    warnings: Vec<ConfigError>,
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
    schemas: Option<Arc<SchemaRegistry>>,
    data_dir: Option<&'a Arc<Path>>,
    errors: Vec<ConfigError>,
    warnings: &'a mut Vec<ConfigError>,
    /// Converter errors, dropped when the registry itself is broken: they would only repeat
    /// that it is missing.
    converter_errors: Vec<ConfigError>,
}

impl PipelineBuild<'_> {
    fn transform(&mut self, spec: &ComponentSpec) -> Option<TransformStage> {
        let p = self.p;
        check_dlq_exists(spec, p, &mut self.errors);
        match self
            .plugins
            .build(spec, &p.file, &p.name, self.data_dir, self.warnings)
        {
            Ok(Built::Transform(t)) => Some(TransformStage {
                name: Arc::from(spec.name.as_str()),
                transform: t,
                options: spec.options,
                on_error: p.on_error(spec),
                metrics: self.metrics.component(&p.name, &spec.name, "transform"),
            }),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn sink(&mut self, spec: &ComponentSpec, kind: &'static str) -> Option<SinkStage> {
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
        match self
            .plugins
            .build(spec, &p.file, &p.name, self.data_dir, self.warnings)
        {
            Ok(Built::Sink(s)) => Some(SinkStage {
                name: Arc::from(spec.name.as_str()),
                sink: s,
                options: spec.options,
                on_error: if kind == "dlq" {
                    OnError::Stop
                } else {
                    p.on_error(spec)
                },
                transforms,
                metrics: self.metrics.component(&p.name, &spec.name, kind),
            }),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn pipeline(mut self) -> Result<Pipeline, Vec<ConfigError>> {
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
        let source = match self.plugins.build(
            &p.source,
            &p.file,
            &p.name,
            self.data_dir,
            self.warnings,
        ) {
            Ok(Built::Source(s)) => Some(s),
            Ok(_) => unreachable!("registry returns the kind asked for"),
            Err(e) => {
                self.errors.push(e);
                None
            }
        };
        let mut transforms: Vec<_> = decoder.into_iter().collect();
        for t in &p.transforms {
            transforms.extend(self.transform(t));
        }
        let mut sinks = Vec::new();
        for s in &p.sinks {
            sinks.extend(self.sink(s, "sink"));
        }
        let dlq = p.dlq.as_ref().and_then(|d| self.sink(d, "dlq"));
        if registry_ok {
            self.errors.append(&mut self.converter_errors);
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(Pipeline {
            name: p.name.clone(),
            source: source.expect("no errors"),
            source_name: Arc::from(p.source.name.as_str()),
            source_metrics: self.metrics.component(&p.name, &p.source.name, "source"),
            transforms,
            sinks,
            dlq,
            budget: p.error_budget,
            settings: p.settings,
            schemas: self.schemas,
        })
    }
}

/// Builds every component of every pipeline, collecting all errors. Nothing connects.
pub fn build(
    specs: Vec<PipelineSpec>,
    registry: &Registry,
    metrics: &MetricsRegistry,
) -> Result<Vec<Pipeline>, ConfigErrors> {
    build_with(specs, Vec::new(), registry, metrics, None, &mut Vec::new())
}

fn build_with(
    specs: Vec<PipelineSpec>,
    mut errors: Vec<ConfigError>,
    registry: &Registry,
    metrics: &MetricsRegistry,
    data_dir: Option<&Arc<Path>>,
    warnings: &mut Vec<ConfigError>,
) -> Result<Vec<Pipeline>, ConfigErrors> {
    let mut out = Vec::new();
    for p in &specs {
        let build = PipelineBuild {
            p,
            plugins: registry,
            metrics,
            schemas: None,
            data_dir,
            errors: Vec::new(),
            warnings,
            converter_errors: Vec::new(),
        };
        match build.pipeline() {
            Ok(pipeline) => out.push(pipeline),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

impl Runtime {
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
        let metrics = MetricsRegistry::default();
        let (specs, errors) = load_path_partial(path, &process_env);
        let mut warnings = Vec::new();
        Ok(Runtime {
            pipelines: build_with(
                specs,
                errors,
                registry,
                &metrics,
                data_dir.as_ref(),
                &mut warnings,
            )?,
            metrics,
            warnings,
        })
    }

    /// Loads and builds pipelines from YAML text.
    pub fn from_yaml_str(
        name: &str,
        yaml: &str,
        registry: &Registry,
    ) -> Result<Self, ConfigErrors> {
        let metrics = MetricsRegistry::default();
        let (specs, errors) = load_str_partial(name, yaml, &process_env);
        let mut warnings = Vec::new();
        Ok(Runtime {
            pipelines: build_with(specs, errors, registry, &metrics, None, &mut warnings)?,
            metrics,
            warnings,
        })
    }

    /// Pipelines built in code.
    pub fn from_pipelines(pipelines: Vec<Pipeline>, metrics: MetricsRegistry) -> Self {
        Runtime {
            pipelines,
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
                .filter_map(|p| Some((p.name.clone(), p.schemas.clone()?)))
                .collect(),
        )
    }

    /// Pipeline names.
    pub fn pipeline_names(&self) -> Vec<&str> {
        self.pipelines.iter().map(|p| p.name()).collect()
    }

    /// Runs every pipeline until all finish. A failing pipeline stops the others (they drain and
    /// commit what they delivered), so a problem is never hidden behind a half-running process.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut set = tokio::task::JoinSet::new();
        for p in self.pipelines {
            let token = shutdown.clone();
            set.spawn(async move {
                let r = p.run(token.clone()).await;
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
                    output_closed: false,
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
