//! The decode and encode stages.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value as Json;
use weir_core::config::format::{FormatKind, FormatSpec};
use weir_core::{Flow, Record, Transform, TransformError};

use crate::FormatError;

#[cfg(feature = "avro")]
use crate::registry::SchemaRegistryClient;

/// Without the `avro` feature there is no registry client; a pipeline asking for Avro fails to
/// build.
#[cfg(not(feature = "avro"))]
pub struct SchemaRegistryClient;

impl From<FormatError> for TransformError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Unavailable(m) => TransformError::Retriable(m),
            other => TransformError::Fatal(other.to_string()),
        }
    }
}

fn check_avro(
    spec: &FormatSpec,
    registry: &Option<Arc<SchemaRegistryClient>>,
) -> Result<(), FormatError> {
    if spec.kind != FormatKind::Avro {
        return Ok(());
    }
    if cfg!(not(feature = "avro")) {
        return Err(FormatError::Config(
            "this build of Weir has no Avro support (feature `avro`)".into(),
        ));
    }
    if registry.is_none() {
        return Err(FormatError::Config(
            "an avro format needs a schema_registry".into(),
        ));
    }
    Ok(())
}

/// Decodes keys and values at the source boundary.
pub struct SourceConverter {
    key: FormatSpec,
    value: FormatSpec,
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    registry: Option<Arc<SchemaRegistryClient>>,
}

impl SourceConverter {
    /// A decoder; `None` when both sides are the defaults (key `string`, value `json`), which
    /// need no stage: JSON values decode lazily on first look.
    pub fn new(
        key: FormatSpec,
        value: FormatSpec,
        registry: Option<Arc<SchemaRegistryClient>>,
    ) -> Result<Option<Self>, FormatError> {
        check_avro(&key, &registry)?;
        check_avro(&value, &registry)?;
        if key.kind == FormatKind::String && value.kind == FormatKind::Json {
            return Ok(None);
        }
        Ok(Some(SourceConverter {
            key,
            value,
            registry,
        }))
    }

    async fn decode(
        &self,
        spec: &FormatSpec,
        bytes: &[u8],
        what: &str,
    ) -> Result<Json, FormatError> {
        // A JSON value never comes here: it decodes lazily, on first look (see `convert`).
        Ok(match spec.kind {
            FormatKind::Json => serde_json::from_slice(bytes)
                .map_err(|e| FormatError::Payload(format!("the {what} is not valid JSON: {e}")))?,
            FormatKind::String => Json::String(
                std::str::from_utf8(bytes)
                    .map_err(|e| {
                        FormatError::Payload(format!("the {what} is not UTF-8 text: {e}"))
                    })?
                    .to_owned(),
            ),
            FormatKind::Bytes => Json::String(B64.encode(bytes)),
            FormatKind::Avro => self.decode_avro(spec, bytes, what).await?,
        })
    }

    #[cfg(feature = "avro")]
    async fn decode_avro(
        &self,
        spec: &FormatSpec,
        bytes: &[u8],
        what: &str,
    ) -> Result<Json, FormatError> {
        let registry = self.registry.as_ref().expect("checked at build");
        if bytes.len() < 5 {
            return Err(FormatError::Payload(format!(
                "the {what} ({} bytes) is too short for the Confluent Avro wire format (magic byte 0, 4-byte schema id, data)",
                bytes.len()
            )));
        }
        if bytes[0] != 0 {
            return Err(FormatError::Payload(format!(
                "the {what} starts with byte 0x{:02x}, not the Confluent wire format's magic byte 0x00",
                bytes[0]
            )));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let schema = registry.by_id(id).await?;
        let mut data = &bytes[5..];
        let style = crate::avro_json::ReadStyle {
            unions: spec.unions,
            times: spec.timestamps,
        };
        let json = schema.compiled().decode(&mut data, style).map_err(|e| {
            FormatError::Payload(format!(
                "the {what} is not valid Avro for schema id {id}: {e}"
            ))
        })?;
        if !data.is_empty() {
            return Err(FormatError::Payload(format!(
                "the {what} has {} bytes left over after the Avro datum of schema id {id}",
                data.len()
            )));
        }
        schema.count_decode();
        Ok(json)
    }

    #[cfg(not(feature = "avro"))]
    async fn decode_avro(&self, _: &FormatSpec, _: &[u8], _: &str) -> Result<Json, FormatError> {
        Err(FormatError::Config("no Avro support in this build".into()))
    }

    async fn convert(&self, record: &mut Record) -> Result<(), FormatError> {
        if self.key.kind != FormatKind::String
            && let Some(k) = record.key.clone()
        {
            let j = self.decode(&self.key, &k, "key").await?;
            record.meta.key_json = Some(Arc::new(j));
        }
        if self.value.kind != FormatKind::Json {
            let raw = record.value.original().cloned().unwrap_or_default();
            let j = self.decode(&self.value, &raw, "value").await?;
            record.value.set_decoded(j);
        }
        Ok(())
    }
}

/// Runs a converter over a batch. When the registry is unavailable the whole batch waits and
/// is retried in order, so nothing is skipped; a bad payload fails only its own record.
async fn convert_batch<'r, F, Fut>(
    records: &'r mut [Record],
    mut convert: F,
) -> Vec<Result<Flow, TransformError>>
where
    F: FnMut(&'r mut Record) -> Fut,
    Fut: std::future::Future<Output = Result<(), FormatError>> + 'r,
{
    let n = records.len();
    let mut out = Vec::with_capacity(n);
    for r in records.iter_mut() {
        match convert(r).await {
            Ok(()) => out.push(Ok(Flow::Keep)),
            Err(FormatError::Unavailable(m)) => {
                return (0..n)
                    .map(|_| Err(TransformError::Retriable(m.clone())))
                    .collect();
            }
            Err(e) => out.push(Err(e.into())),
        }
    }
    out
}

/// A converter has no per-record form: the runner calls `apply_batch` because `is_batched`.
macro_rules! batched_transform {
    ($t:ty, $stage:literal) => {
        #[async_trait]
        impl Transform for $t {
            fn stage(&self) -> &'static str {
                $stage
            }
            fn apply(&self, _: &mut Record) -> Result<Flow, TransformError> {
                Err(TransformError::Fatal(
                    "converters run batched (is_batched); apply_batch was not used".into(),
                ))
            }
            fn is_batched(&self) -> bool {
                true
            }
            async fn apply_batch(
                &self,
                records: &mut [Record],
            ) -> Vec<Result<Flow, TransformError>> {
                convert_batch(records, |r| self.convert(r)).await
            }
        }
    };
}

batched_transform!(SourceConverter, "decode");
batched_transform!(SinkConverter, "encode");

/// Encodes keys and values before a sink writes them.
pub struct SinkConverter {
    key: FormatSpec,
    value: FormatSpec,
    /// The sink's topic, for the `topic` and `topic_record` subject strategies.
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    topic: Option<String>,
    #[cfg_attr(not(feature = "avro"), allow(dead_code))]
    registry: Option<Arc<SchemaRegistryClient>>,
    #[cfg(feature = "avro")]
    schemas: [Option<(String, Option<SuppliedSchemaText>)>; 2],
}

#[cfg(feature = "avro")]
type SuppliedSchemaText = (Option<String>, String);

impl SinkConverter {
    /// An encoder; `None` when both sides are the defaults (key as is, value `json`).
    pub fn new(
        key: FormatSpec,
        value: FormatSpec,
        topic: Option<String>,
        registry: Option<Arc<SchemaRegistryClient>>,
    ) -> Result<Option<Self>, FormatError> {
        check_avro(&key, &registry)?;
        check_avro(&value, &registry)?;
        if key.kind == FormatKind::String && value.kind == FormatKind::Json {
            return Ok(None);
        }
        #[cfg(feature = "avro")]
        let side = |side: &str, e: FormatError| match e {
            FormatError::Config(m) => FormatError::Config(format!("{side}: {m}")),
            other => other,
        };
        #[cfg(feature = "avro")]
        let schemas = [
            supplied(&key, true, &topic).map_err(|e| side("key", e))?,
            supplied(&value, false, &topic).map_err(|e| side("value", e))?,
        ];
        Ok(Some(SinkConverter {
            key,
            value,
            topic,
            registry,
            #[cfg(feature = "avro")]
            schemas,
        }))
    }

    async fn encode(
        &self,
        side: usize,
        spec: &FormatSpec,
        j: &Json,
        original: Option<&[u8]>,
    ) -> Result<Vec<u8>, FormatError> {
        let what = if side == 0 { "key" } else { "value" };
        match spec.kind {
            FormatKind::Json => Ok(serde_json::to_vec(j).expect("JSON serializes")),
            FormatKind::String => Ok(match j {
                Json::String(t) => t.clone().into_bytes(),
                other => serde_json::to_vec(other).expect("JSON serializes"),
            }),
            FormatKind::Bytes => match (original, j) {
                (Some(o), _) => Ok(o.to_vec()),
                (None, Json::String(t)) => B64.decode(t).map_err(|e| {
                    FormatError::Payload(format!(
                        "format bytes: the {what} is not base64 text: {e}"
                    ))
                }),
                (None, other) => Err(FormatError::Payload(format!(
                    "format bytes: the {what} must be base64 text, found {}",
                    if other.is_object() {
                        "an object"
                    } else {
                        "another JSON value"
                    }
                ))),
            },
            FormatKind::Avro => self.encode_avro(side, j, what).await,
        }
    }

    #[cfg(feature = "avro")]
    async fn encode_avro(&self, side: usize, j: &Json, what: &str) -> Result<Vec<u8>, FormatError> {
        use schema_registry_converter::schema_registry_common::{
            SchemaType, SubjectNameStrategy, SuppliedSchema,
        };
        use weir_core::config::format::SubjectStrategy;
        let registry = self.registry.as_ref().expect("checked at build");
        let spec = if side == 0 { &self.key } else { &self.value };
        let is_key = side == 0;
        let (cache_key, supplied) = self.schemas[side]
            .as_ref()
            .expect("avro sides have a schema source");
        let topic = self.topic.clone().unwrap_or_default();
        let strategy = match (supplied.as_ref(), spec.subject_strategy) {
            (Some((name, text)), SubjectStrategy::Topic) => {
                SubjectNameStrategy::TopicNameStrategyWithSchema(
                    topic,
                    is_key,
                    SuppliedSchema::new(name.clone(), SchemaType::Avro, text.clone()),
                )
            }
            (Some((name, text)), SubjectStrategy::Record) => {
                SubjectNameStrategy::RecordNameStrategyWithSchema(SuppliedSchema::new(
                    name.clone(),
                    SchemaType::Avro,
                    text.clone(),
                ))
            }
            (Some((name, text)), SubjectStrategy::TopicRecord) => {
                SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
                    topic,
                    SuppliedSchema::new(name.clone(), SchemaType::Avro, text.clone()),
                )
            }
            (None, _) => SubjectNameStrategy::TopicNameStrategy(topic, is_key),
        };
        let schema = registry.for_subject(cache_key, strategy).await?;
        let value = schema.compiled().from_json(j).map_err(|e| {
            FormatError::Payload(format!(
                "the {what} does not fit schema id {}: {e}",
                schema.id
            ))
        })?;
        #[allow(deprecated)]
        let datum = apache_avro::to_avro_datum(&schema.compiled().schema, value).map_err(|e| {
            FormatError::Payload(format!(
                "the {what} does not fit schema id {}: {e}",
                schema.id
            ))
        })?;
        let mut out = Vec::with_capacity(5 + datum.len());
        out.push(0);
        out.extend_from_slice(&schema.id.to_be_bytes());
        out.extend_from_slice(&datum);
        schema.count_encode();
        Ok(out)
    }

    #[cfg(not(feature = "avro"))]
    async fn encode_avro(&self, _: usize, _: &Json, _: &str) -> Result<Vec<u8>, FormatError> {
        Err(FormatError::Config("no Avro support in this build".into()))
    }

    async fn convert(&self, record: &mut Record) -> Result<(), FormatError> {
        use std::borrow::Cow;
        // Both sides are encoded before either is replaced, so a failed record keeps its own
        // key for the dead letter.
        let mut encoded_key = None;
        if self.key.kind != FormatKind::String {
            // A decoded key as it is; raw key bytes as text (and, for `bytes`, as they are).
            let key: Option<(Cow<'_, Json>, Option<&[u8]>)> =
                match (&record.meta.key_json, &record.key) {
                    (Some(j), _) => Some((Cow::Borrowed(&**j), None)),
                    (None, Some(k)) => Some((
                        Cow::Owned(Json::String(String::from_utf8_lossy(k).into_owned())),
                        Some(&k[..]).filter(|_| self.key.kind == FormatKind::Bytes),
                    )),
                    (None, None) => None,
                };
            if let Some((j, original)) = key {
                encoded_key = Some(self.encode(0, &self.key, &j, original).await?);
            }
        }
        if self.value.kind != FormatKind::Json {
            // `bytes` writes an unmodified value's original bytes without looking inside.
            let original = (self.value.kind == FormatKind::Bytes && !record.value.is_modified())
                .then(|| record.value.original().cloned())
                .flatten();
            let bytes = match &original {
                Some(o) => self.encode(1, &self.value, &Json::Null, Some(o)).await?,
                None => {
                    let j = record
                        .value
                        .json()
                        .map_err(|e| FormatError::Payload(e.to_string()))?;
                    self.encode(1, &self.value, j, None).await?
                }
            };
            record.value.set_output(bytes);
        }
        if let Some(k) = encoded_key {
            record.key = Some(k.into());
        }
        Ok(())
    }
}

/// The schema a sink side writes with: (cache key, supplied (name, text) or None for latest).
#[cfg(feature = "avro")]
fn supplied(
    spec: &FormatSpec,
    is_key: bool,
    topic: &Option<String>,
) -> Result<Option<(String, Option<SuppliedSchemaText>)>, FormatError> {
    use weir_core::config::format::SubjectStrategy;
    if spec.kind != FormatKind::Avro {
        return Ok(None);
    }
    let text = match (&spec.schema, &spec.schema_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| FormatError::Config(format!("schema_file {}: {e}", p.display())))?,
        ),
        (None, None) => None,
    };
    let name = match &text {
        Some(t) => {
            let parsed = apache_avro::Schema::parse_str(t)
                .map_err(|e| FormatError::Config(format!("the Avro schema does not parse: {e}")))?;
            crate::avro_json::Compiled::compile(parsed)
                .map_err(FormatError::Config)?
                .name()
        }
        None => None,
    };
    if spec.subject_strategy != SubjectStrategy::Record && topic.is_none() {
        return Err(FormatError::Config(
            "the topic and topic_record subject strategies need the sink's topic: a fixed `topic:` (or use subject_strategy: record)".into(),
        ));
    }
    if text.is_none() && spec.subject_strategy != SubjectStrategy::Topic {
        return Err(FormatError::Config(
            "use_latest works with subject_strategy: topic".into(),
        ));
    }
    // The encoder caches schemas by this key, shared by every sink on the registry: it must
    // tell apart the key and value sides and any two schemas.
    let key = format!(
        "{}|{:?}|{:?}|{}",
        if is_key { "key" } else { "value" },
        spec.subject_strategy,
        topic,
        text.as_deref().unwrap_or("<latest>")
    );
    Ok(Some((key, text.map(|t| (name, t)))))
}

#[cfg(all(test, feature = "avro"))]
mod tests {
    use super::*;

    #[test]
    fn schema_cache_keys_differ_per_side_and_per_schema() {
        let spec = |schema: &str| {
            let mut f = FormatSpec::new(FormatKind::Avro);
            f.schema = Some(schema.to_owned());
            f
        };
        // Same length, different schemas.
        let a = spec(r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#);
        let b = spec(r#"{"type":"record","name":"B","fields":[{"name":"y","type":"int"}]}"#);
        let topic = Some("t".to_owned());
        let key = |f: &FormatSpec, is_key| supplied(f, is_key, &topic).unwrap().unwrap().0;
        assert_ne!(
            key(&a, false),
            key(&b, false),
            "two schemas, one cache entry"
        );
        assert_ne!(
            key(&a, true),
            key(&a, false),
            "key and value sides share an entry"
        );
    }
}
