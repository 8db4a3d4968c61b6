//! Turning `format:` and `schema_registry:` into converter stages (docs/decisions.md #30): the
//! source's decoder is the pipeline's first stage, a sink's encoder the last of its own stages.

use std::sync::Arc;

use weir_core::ConfigError;
use weir_core::config::{ComponentSpec, PipelineSpec, StageOptions};
use weir_core::template::Template;
use weir_formats::{FormatError, SinkConverter, SourceConverter};

use weir_engine::metrics::MetricsRegistry;
use weir_engine::stages::TransformStage;

pub use weir_formats::SchemaRegistryClient;
#[cfg(feature = "avro")]
pub use weir_formats::registry::SchemaInfo;

fn config_error(p: &PipelineSpec, c: &ComponentSpec, e: FormatError) -> ConfigError {
    p.file.error(
        c.format_location.unwrap_or(c.location),
        format!("{}.format", c.path),
        e.to_string(),
    )
}

/// The pipeline's registry client (no request is made until a converter needs a schema).
pub fn pipeline_registry(
    p: &PipelineSpec,
) -> Result<Option<Arc<SchemaRegistryClient>>, ConfigError> {
    let Some(cfg) = &p.schema_registry else {
        return Ok(None);
    };
    #[cfg(feature = "avro")]
    {
        SchemaRegistryClient::new(cfg)
            .map(|r| Some(Arc::new(r)))
            .map_err(|e| {
                let (location, path) = p
                    .schema_registry_at
                    .clone()
                    .unwrap_or_else(|| (p.location, format!("{}.schema_registry", p.path)));
                p.file.error(location, path, e.to_string())
            })
    }
    #[cfg(not(feature = "avro"))]
    {
        let _ = cfg;
        Ok(None)
    }
}

fn stage(
    p: &PipelineSpec,
    c: &ComponentSpec,
    transform: Arc<dyn weir_core::Transform>,
    options: StageOptions,
    metrics: &MetricsRegistry,
) -> TransformStage {
    let name = format!("{}.format", c.name);
    TransformStage {
        metrics: metrics.component(&p.name, &name, "transform", "format"),
        name: Arc::from(name),
        transform,
        options,
        on_error: p.on_error(c),
    }
}

/// The source's decoder, when its `format:` is not the default (key string, value JSON).
pub fn source_stage(
    p: &PipelineSpec,
    registry: &Option<Arc<SchemaRegistryClient>>,
    metrics: &MetricsRegistry,
) -> Result<Option<TransformStage>, ConfigError> {
    let c = &p.source;
    let Some(f) = &c.format else {
        return Ok(None);
    };
    let converter = SourceConverter::new(f.key(), f.value(), registry.clone())
        .map_err(|e| config_error(p, c, e))?;
    // Default stage options: retried for as long as the registry is unavailable, with backoff.
    Ok(converter.map(|t| stage(p, c, Arc::new(t), StageOptions::default(), metrics)))
}

/// A sink's encoder, when its `format:` is not the default. The `topic` and `topic_record`
/// subject strategies name the subject after the sink's fixed `topic:`.
pub fn sink_stage(
    c: &ComponentSpec,
    p: &PipelineSpec,
    registry: &Option<Arc<SchemaRegistryClient>>,
    metrics: &MetricsRegistry,
) -> Result<Option<TransformStage>, ConfigError> {
    let Some(f) = &c.format else {
        return Ok(None);
    };
    let topic = c
        .config
        .get("topic")
        .and_then(|n| n.as_str())
        .filter(|t| Template::compile(t).is_ok_and(|t| t.is_static()))
        .map(str::to_owned);
    let converter = SinkConverter::new(f.key(), f.value(), topic, registry.clone())
        .map_err(|e| config_error(p, c, e))?;
    // The sink's own retry options: an unavailable registry is retried like a failed write.
    Ok(converter.map(|t| stage(p, c, Arc::new(t), c.options, metrics)))
}

/// The schemas fetched by each pipeline's registry client.
#[cfg(feature = "avro")]
#[derive(Clone, Default)]
pub struct SchemaCatalog(pub(crate) Vec<(Arc<str>, Arc<SchemaRegistryClient>)>);

#[cfg(feature = "avro")]
impl SchemaCatalog {
    /// Every schema used so far: (pipeline, id, subjects, name, decode and encode counts).
    pub fn list(&self) -> Vec<(Arc<str>, SchemaInfo)> {
        self.0
            .iter()
            .flat_map(|(p, r)| r.schemas().into_iter().map(move |s| (p.clone(), s)))
            .collect()
    }
}
