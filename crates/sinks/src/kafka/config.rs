//! Options of the `kafka` sink.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_kafka::{ClientOption, KafkaSasl, KafkaTls};

/// Compression of produced batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip: smallest, slowest.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4: fast, a good default for throughput.
    Lz4,
    /// Zstandard: small and fast.
    Zstd,
}

impl Compression {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Produces records to Kafka with an idempotent producer and `acks=all`. A batch is acknowledged
/// only when the broker confirmed every record in it (delivery reports, not enqueueing).
/// librdkafka retries transient errors itself within `message_timeout`; what still fails goes to
/// the runner's retry and `on_error` policy. Key, value, headers and timestamp are passed through
/// unless templated here. Topics are not created: create them first.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Topic to write to; a template such as `alerts-<$.value.country>` routes per record.
    pub topic: String,
    /// The message key as a template (`<$.value.customer_id>`); the record's own key when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// The partition as a template rendering to a number (`<$.partition>` keeps the source's);
    /// when absent the partitioner hashes the key (murmur2, as the Java client).
    #[serde(default)]
    pub partition: Option<String>,
    /// Headers to add (values are templates); the record's headers are always passed through.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Compression of produced batches: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer waits to fill a batch (`linger.ms`): a record can wait this long
    /// before it is sent when traffic is light; a full batch (`batch_bytes`) goes at once. Keep it
    /// above the broker's produce round trip: below it, librdkafka's idempotent producer spins a
    /// core while its one request per partition is in flight (decision 99).
    #[serde(default = "default_linger")]
    pub linger: HumanDuration,
    /// Largest batch per partition in bytes (`batch.size`).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// How long librdkafka keeps retrying a record before reporting it failed to the runner.
    #[serde(default = "default_message_timeout")]
    pub message_timeout: HumanDuration,
    /// TLS to the brokers: CA file, and a client certificate and key for mutual TLS.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Any other librdkafka producer property, applied after Weir's defaults. The keys that carry
    /// the delivery guarantee or that have an option of their own are refused, naming the
    /// option to use: `enable.idempotence`, `acks`, `compression.codec`, `compression.type`,
    /// `linger.ms`, `batch.size`, `message.timeout.ms`, `bootstrap.servers`.
    #[serde(default)]
    pub options: BTreeMap<String, ClientOption>,
}

fn default_linger() -> HumanDuration {
    HumanDuration::from_millis(50)
}
fn default_batch_bytes() -> usize {
    1 << 20
}
fn default_message_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
