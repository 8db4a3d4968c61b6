//! Converters as written in YAML: `format:` on a source or sink (key and value separately, like
//! Kafka Connect's key and value converters) and the `schema_registry:` they use.
//!
//! ```yaml
//! schema_registry: { url: "http://127.0.0.1:8081" }
//! pipelines:
//!   p:
//!     source: { type: kafka, ..., format: { value: avro } }
//!     sinks:
//!       - type: kafka
//!         format: { value: { type: avro, schema_file: alert.avsc } }
//! ```

use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{HumanDuration, Secret};

/// How bytes are read into, or written from, the JSON that filters and templates see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    /// UTF-8 JSON text.
    Json,
    /// Avro binary in the Confluent wire format (magic byte 0, 4-byte schema id, datum).
    Avro,
    /// UTF-8 text, seen as a JSON string.
    String,
    /// Opaque bytes, seen as a base64 JSON string.
    Bytes,
}

impl FormatKind {
    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatKind::Json => "json",
            FormatKind::Avro => "avro",
            FormatKind::String => "string",
            FormatKind::Bytes => "bytes",
        }
    }
}

/// How an Avro union appears in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnionStyle {
    /// The branch's value itself (`"x"` for `["null","string"]`).
    #[default]
    Plain,
    /// `{"<branch type>": value}`, as Avro's JSON encoding; `null` stays `null`.
    Tagged,
}

/// How Avro date, time and timestamp logical types appear in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeStyle {
    /// The Avro integer (days, milliseconds, microseconds, nanoseconds).
    #[default]
    Integer,
    /// RFC 3339 text: `2026-11-23`, `12:30:00.250`, `2026-11-23T12:30:00.250Z`.
    Rfc3339,
}

/// Which registry subject a sink's Avro schema lives under (Confluent's subject name strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStrategy {
    /// `<topic>-value` / `<topic>-key` (Confluent's default).
    #[default]
    Topic,
    /// The record's full name.
    Record,
    /// `<topic>-<record full name>`.
    TopicRecord,
}

/// One converter: the format plus its options. Written as a word (`avro`) or a mapping
/// (`{ type: avro, schema_file: alert.avsc }`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// `json`, `avro`, `string` or `bytes`.
    #[serde(rename = "type")]
    pub kind: FormatKind,
    /// Avro, reading: how unions appear in JSON.
    #[serde(default)]
    pub unions: UnionStyle,
    /// Avro, reading: how date/time/timestamp logical types appear in JSON. Writing accepts both.
    #[serde(default)]
    pub timestamps: TimeStyle,
    /// Avro, writing: the schema (JSON text) to register and write with.
    #[serde(default)]
    pub schema: Option<String>,
    /// Avro, writing: a file holding the schema to register and write with.
    #[serde(default)]
    pub schema_file: Option<PathBuf>,
    /// Avro, writing: write with the subject's latest registered schema instead of registering one.
    #[serde(default)]
    pub use_latest: bool,
    /// Avro, writing: the subject name strategy.
    #[serde(default)]
    pub subject_strategy: SubjectStrategy,
}

impl FormatSpec {
    /// A format with default options.
    pub fn new(kind: FormatKind) -> Self {
        FormatSpec {
            kind,
            unions: UnionStyle::default(),
            timestamps: TimeStyle::default(),
            schema: None,
            schema_file: None,
            use_latest: false,
            subject_strategy: SubjectStrategy::default(),
        }
    }
}

/// The word-or-mapping form of [`FormatSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct FormatOption(pub FormatSpec);

impl<'de> Deserialize<'de> for FormatOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FormatOption;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of json, avro, string, bytes, or a mapping with `type:`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FormatOption, E> {
                let kind = FormatKind::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                Ok(FormatOption(FormatSpec::new(kind)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FormatOption, A::Error> {
                FormatSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FormatOption)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for FormatOption {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Format".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = generator.subschema_for::<FormatSpec>();
        let kind = generator.subschema_for::<FormatKind>();
        json_schema!({ "anyOf": [kind, spec] })
    }
}

/// `format:` on a source or sink.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Formats {
    /// The key's format (default `string`).
    #[serde(default)]
    pub key: Option<FormatOption>,
    /// The value's format (default `json`).
    #[serde(default)]
    pub value: Option<FormatOption>,
}

impl Formats {
    /// The key's format, `string` unless set.
    pub fn key(&self) -> FormatSpec {
        self.key
            .as_ref()
            .map_or_else(|| FormatSpec::new(FormatKind::String), |f| f.0.clone())
    }
    /// The value's format, `json` unless set.
    pub fn value(&self) -> FormatSpec {
        self.value
            .as_ref()
            .map_or_else(|| FormatSpec::new(FormatKind::Json), |f| f.0.clone())
    }
    /// True when either side uses Avro (and so needs a schema registry).
    pub fn uses_avro(&self) -> bool {
        self.key().kind == FormatKind::Avro || self.value().kind == FormatKind::Avro
    }
}

/// Basic authentication (Confluent Cloud: API key and secret).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name or API key.
    pub username: String,
    /// Password or API secret (`${ENV}` or `file:` reference recommended).
    pub password: Secret,
}

/// TLS to the registry.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryTls {
    /// PEM file of the certificate authorities to trust, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// One URL or several (tried in order, for failover).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Urls {
    /// One URL.
    One(String),
    /// Several, tried in order.
    Many(Vec<String>),
}

impl Urls {
    /// The URLs in order.
    pub fn list(&self) -> Vec<String> {
        match self {
            Urls::One(u) => vec![u.clone()],
            Urls::Many(v) => v.clone(),
        }
    }
}

/// A Confluent-compatible Schema Registry (`schema_registry:` at the top of a file or in a
/// pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL, or a list tried in order.
    pub url: Urls,
    /// Basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// TLS options for `https://` URLs.
    #[serde(default)]
    pub tls: Option<RegistryTls>,
    /// Timeout of one registry request.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
