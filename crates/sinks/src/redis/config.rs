//! Options of the `redis` sink.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_core::config::Secret;
use weir_redis::RedisTls;

/// Appends each record to a Redis stream with `XADD`, the stream named by a template
/// (`events:<$.value.ccid>`). An entry holds the value (its bytes as they are: JSON text for
/// JSON values) and, unless their option is empty, the key, the headers and the record's
/// source position (topic, partition, offset), by which a consumer recognises the duplicates
/// that at-least-once delivery brings after a crash. A batch is one pipelined round trip; a
/// record is acknowledged only after Redis answered its `XADD`. Connection failures,
/// timeouts and the replies `LOADING`, `BUSY`, `TRYAGAIN` (and the other "not now" codes of
/// docs/connectors/redis.md) are retried with the runner's backoff; any other error reply
/// (`WRONGTYPE`: the key is not a stream) fails that record alone, which then follows
/// `on_error` (the dead-letter queue by default). Streams can be trimmed by length
/// (`max_len`) or by age (`max_age`) as entries are added.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
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
    /// Time allowed for Redis to answer a batch's round trip.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time allowed for connecting (TCP, TLS, `AUTH`, `SELECT`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The stream to append to, a template (`events:<$.value.ccid>`). A field the record
    /// lacks renders as empty text; a name that renders empty fails the record.
    pub stream: String,
    /// The entry field that holds the record's value.
    #[serde(default = "default_value_field")]
    pub value_field: String,
    /// The entry field for the record's key, written when the record has one; empty to leave
    /// keys out.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Each header becomes a field named this prefix plus the header's name (a null header an
    /// empty value); empty to leave headers out.
    #[serde(default = "default_headers_prefix")]
    pub headers_prefix: String,
    /// The entry field for the topic (or stream) the record was read from, written when the
    /// source has positions; empty to leave it out.
    #[serde(default = "default_topic_field")]
    pub topic_field: String,
    /// The entry field for the record's source partition; empty to leave it out.
    #[serde(default = "default_partition_field")]
    pub partition_field: String,
    /// The entry field for the record's source offset: with topic and partition, a replayed
    /// record's entry repeats them, so consumers can drop duplicates. Empty to leave it out.
    #[serde(default = "default_offset_field")]
    pub offset_field: String,
    /// Trim each stream to this many entries as records are added (`MAXLEN ~ n`).
    #[serde(default)]
    pub max_len: Option<u64>,
    /// Trim entries older than this as records are added (`MINID ~ <now − max_age>`, by the
    /// milliseconds of the entry ids Redis generates). Not with `max_len`.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
    /// Trim exactly (`=`) instead of approximately (`~`). Approximate trimming (the default)
    /// removes only whole internal nodes, so a stream may keep somewhat more than asked, and
    /// is much cheaper.
    #[serde(default)]
    pub exact_trim: bool,
    /// Create streams that do not exist. With `false` (`NOMKSTREAM`), a record for a missing
    /// stream is not written and fails, following `on_error` (`drop` to discard such records
    /// quietly).
    #[serde(default = "yes")]
    pub create_streams: bool,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
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
fn default_topic_field() -> String {
    "topic".into()
}
fn default_partition_field() -> String {
    "partition".into()
}
fn default_offset_field() -> String {
    "offset".into()
}
fn yes() -> bool {
    true
}
