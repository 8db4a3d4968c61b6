//! Kafka client plumbing shared by the `kafka` source and sink and the operations API, as
//! `weir-http` is for HTTP: connection settings (TLS, SASL, raw librdkafka options) turned into
//! client properties, the librdkafka configuration built from them, and client diagnostics that
//! keep secrets out of logs.
#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod settings;

pub use client::client_config;
pub use settings::{
    ClientDiagnostics, ClientOption, ClientProperties, KafkaSasl, KafkaTls,
    RESERVED_CONSUMER_OPTIONS, RESERVED_PRODUCER_OPTIONS, SaslMechanism, check_reserved,
    client_properties,
};
