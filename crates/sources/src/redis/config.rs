//! Options of the `redis` source.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_core::config::Secret;
use weir_redis::RedisTls;

/// Where a consumer group that does not exist yet starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Only entries added after the group is created (`$`).
    #[default]
    Latest,
    /// Every entry still in the stream (`0`).
    Earliest,
}

/// Reads Redis streams in a consumer group (`XREADGROUP`), at least once: an entry is
/// acknowledged (`XACK`) only after every sink wrote its record, a filter dropped it, or the
/// dead-letter queue took it. Entries this consumer read but did not acknowledge (a crash, a
/// failed record) are read again when it starts; entries another consumer left pending for
/// `claim_idle` (it crashed or went away) are taken over with `XAUTOCLAIM`. The group is created
/// when missing (`MKSTREAM`), at `start_from`. Each record's position is its stream and entry id:
/// `<$.topic>` is the stream, `<$.offset>` the id as one number, the `redis.id` header the id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSourceConfig {
    /// `redis://host:port`, or `rediss://host:port` for TLS. The user, password and database
    /// have options of their own; a URL with a password is refused.
    pub url: String,
    /// The ACL user to authenticate as (`AUTH username password`); Redis's `default` user
    /// when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// The password, a secret: `${REDIS_PASSWORD}` or `file:/run/secrets/redis`. Never
    /// shown in logs or errors.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The database index (`SELECT`).
    #[serde(default)]
    pub database: u32,
    /// TLS for `rediss://`: `ca_file` to trust instead of the system's roots, `cert_file` and
    /// `key_file` for servers that check clients.
    #[serde(default)]
    pub tls: Option<RedisTls>,
    /// Time allowed for Redis to answer a command (a blocking read gets `block` more).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time allowed for connecting (TCP, TLS, `AUTH`, `SELECT`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The streams to read.
    pub streams: Vec<String>,
    /// The consumer group; sources with the same group share the entries.
    pub group: String,
    /// This consumer's name within the group, which must be unique among the group's running
    /// consumers and stable across restarts (its unacknowledged entries are read again at
    /// start). Default: `weir-<hostname>-<pipeline>-<component>`.
    #[serde(default)]
    pub consumer: Option<String>,
    /// Where a new group starts: `latest` (`$`) or `earliest` (`0`). An existing group always
    /// continues where it is.
    #[serde(default)]
    pub start_from: StartFrom,
    /// Entries per read and stream (`COUNT`).
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// How long a read waits for new entries (`BLOCK`) before it checks for shutdown and
    /// entries to claim.
    #[serde(default = "default_block")]
    pub block: HumanDuration,
    /// Entries pending (read by a consumer, not acknowledged) for longer than this are taken
    /// over (`XAUTOCLAIM`) and delivered again. Set it above the longest time a record can
    /// spend in the pipeline, retries included, or records still in flight elsewhere are
    /// delivered twice.
    #[serde(default = "default_claim_idle")]
    pub claim_idle: HumanDuration,
    /// How often to look for entries to take over.
    #[serde(default = "default_claim_interval")]
    pub claim_interval: HumanDuration,
    /// At shutdown, how long to wait for records in flight to finish and be acknowledged; the
    /// rest stay pending and are read again.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// The entry field that holds the record's value (as the `redis` sink writes it). An
    /// entry without it becomes a record whose value is a JSON object of all its fields.
    #[serde(default = "default_value_field")]
    pub value_field: String,
    /// The entry field that holds the record's key; empty for none.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Fields named with this prefix become headers named without it. Every other field but
    /// the value and key becomes a header named as the field.
    #[serde(default = "default_headers_prefix")]
    pub headers_prefix: String,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_batch_records() -> usize {
    500
}
fn default_block() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_claim_idle() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_claim_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration::from_secs(20)
}
fn default_value_field() -> String {
    "value".into()
}
fn default_key_field() -> String {
    "key".into()
}
fn default_headers_prefix() -> String {
    "header.".into()
}
