//! Options of the `redis` lookup.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_core::config::Secret;
use weir_redis::RedisTls;

/// The command that reads the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LookupCommand {
    /// `GET`: a string key, by default holding JSON.
    #[default]
    Get,
    /// `HGETALL`: a hash, read as a JSON object of its fields (strings by default).
    Hgetall,
}

/// How the values read are turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// Parsed as JSON; a value that is not JSON fails the record.
    Json,
    /// Taken as text (a JSON string).
    String,
}

/// What happens to a record whose key is missing (or holds an empty answer: `null`, `{}`,
/// `[]`, an empty hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnMiss {
    /// Drop the record, as an HTTP enrichment's empty answer does (Pipes' semantics).
    #[default]
    Drop,
    /// Keep the record unchanged.
    Keep,
    /// Fail the record, which then follows `on_error` (the dead-letter queue by default), as an
    /// HTTP enrichment's 404 does.
    Fail,
}

/// A lookup answer cache.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupCache {
    /// How long an answer (a miss included) is reused.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// Most answers kept; the oldest go first.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

/// Enriches each record from a Redis key, the key a template (`tenant:<$.value.tenant>`):
/// `GET` of a string (JSON by default) or `HGETALL` of a hash (an object of its fields), the
/// way the `http` enrichment merges an HTTP answer. With `target`, the answer is set at that
/// value path; without, it replaces the value, and an array answer becomes one record per
/// element. A missing key follows `on_miss` (drop, as an empty HTTP answer; keep; or fail). The
/// keys of a batch are read in one pipelined round trip, and answers can be cached for a while.
/// An unreachable Redis and the "not now" replies (`LOADING`, `BUSY`...) are retried with the
/// stage's backoff; any other error reply (`WRONGTYPE`: the key holds another type) fails the
/// record, which then follows `on_error`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisTransformConfig {
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
    /// Time allowed for Redis to answer a batch's lookups.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Time allowed for connecting (TCP, TLS, `AUTH`, `SELECT`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The key to read, a template (`tenant:<$.value.tenant>:region`). A key that renders
    /// empty fails the record.
    pub key: String,
    /// `get` (a string) or `hgetall` (a hash).
    #[serde(default)]
    pub command: LookupCommand,
    /// `json` or `string`: how a string's value, or each of a hash's field values, becomes
    /// JSON. Default: `json` for `get`, `string` for `hgetall`.
    #[serde(default)]
    pub value_format: Option<ValueFormat>,
    /// Where the answer goes (`value.tenant`); the whole value when absent.
    #[serde(default)]
    pub target: Option<String>,
    /// `drop`, `keep` or `fail`: what a missing key does to the record.
    #[serde(default)]
    pub on_miss: OnMiss,
    /// Reuse answers by key for a while (none by default: every record reads Redis).
    #[serde(default)]
    pub cache: Option<LookupCache>,
}

fn default_ttl() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_max_entries() -> usize {
    10_000
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
