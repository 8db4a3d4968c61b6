//! Weir's converters (Kafka Connect's key and value converters): `format: json | avro | string |
//! bytes` on sources (decode at the source boundary) and sinks (encode before the write), with
//! Avro in the Confluent wire format through a Confluent-compatible Schema Registry.
//!
//! The runner turns a component's `format:` into a [`SourceConverter`] (the first pipeline stage)
//! or a [`SinkConverter`] (the last of the sink's own stages), so a payload that cannot be decoded
//! or encoded goes through the same error policy as any stage: retried while the registry is
//! unavailable, dead-lettered (original bytes untouched) when the payload itself is bad.

#[cfg(feature = "avro")]
pub mod avro_json;
mod converter;
#[cfg(feature = "avro")]
pub mod registry;

/// The registry client's placeholder in a build without Avro support.
#[cfg(not(feature = "avro"))]
pub use converter::SchemaRegistryClient;
pub use converter::{SinkConverter, SourceConverter};
#[cfg(feature = "avro")]
pub use registry::SchemaRegistryClient;

/// Why a converter could not be built or a value could not be converted.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The converter's configuration cannot work (file missing, bad schema, bad TLS files).
    #[error("{0}")]
    Config(String),
    /// The registry cannot be reached or answers 5xx/429: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The registry does not have or rejects the schema.
    #[error("{0}")]
    Schema(String),
    /// The payload does not decode, or the value does not fit the schema.
    #[error("{0}")]
    Payload(String),
}
