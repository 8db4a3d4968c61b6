//! Options of the `kafka` source.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_kafka::{ClientOption, KafkaSasl, KafkaTls};

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Only what is produced after the pipeline first starts.
    #[default]
    Latest,
    /// Everything still retained in the topic.
    Earliest,
}

/// Consumes topics in a consumer group, at least once: a record's offset is committed only after
/// every sink wrote it, a filter dropped it, or the dead-letter queue took it, and only up to the
/// highest contiguous finished offset of each partition. An existing group always resumes from its
/// committed offsets; `start_from` applies only to a group without any. Start more runners with
/// the same `group_id` to scale out; partitions are split between them (cooperative-sticky).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Topics to consume (this or `topic_pattern`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression in Rust's `regex` syntax, anchored at the start (add `$` for the
    /// end); every matching topic is consumed, including ones created later. It is translated
    /// into the POSIX regex librdkafka subscribes with, so `\d`, `(?i)` and classes mean what
    /// they mean in Rust; what POSIX cannot express (`\b`) is refused.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Consumer group; runners with the same group share the partitions.
    pub group_id: String,
    /// Where a group with no committed offsets starts: `latest` or `earliest`.
    #[serde(default)]
    pub start_from: StartFrom,
    /// Records per batch handed to the pipeline (fewer when the topic has no more right now).
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// How often finished offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: HumanDuration,
    /// On rebalance and shutdown, how long to wait for in-flight records to finish before
    /// committing what is done (the rest is redelivered, to this or another runner).
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// How long start-up waits for the brokers to answer before failing with the client's error.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// TLS to the brokers: CA file, and a client certificate and key for mutual TLS.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Any other librdkafka consumer property (`session.timeout.ms`, `fetch.max.bytes`...),
    /// applied after Weir's defaults. The keys that carry the delivery guarantee or that have an
    /// option of their own are refused, naming the option to use: `group.id`,
    /// `bootstrap.servers`, `auto.offset.reset`, `enable.auto.commit`, `auto.commit.interval.ms`,
    /// `enable.auto.offset.store`, `enable.partition.eof`.
    #[serde(default)]
    pub options: BTreeMap<String, ClientOption>,
}

fn default_batch_records() -> usize {
    500
}
fn default_commit_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration::from_secs(20)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
