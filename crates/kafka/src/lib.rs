//! Kafka client plumbing shared by the `kafka` source and sink and the operations API, as
//! `weir-http` is for HTTP: connection settings (TLS, SASL, raw librdkafka options) turned into
//! client properties, the librdkafka configuration built from them, client diagnostics that
//! keep secrets out of logs, and `topic_pattern` translated into the regex librdkafka runs.
#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod pattern;
pub mod settings;

pub use client::client_config;
pub use pattern::{PatternError, TopicPattern};
pub use settings::{
    ClientDiagnostics, ClientOption, ClientProperties, KafkaSasl, KafkaTls,
    RESERVED_CONSUMER_OPTIONS, RESERVED_PRODUCER_OPTIONS, SaslMechanism, check_reserved,
    client_properties,
};
