//! Options of the `http` sink.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_http::{HttpAuth, HttpTls};

/// The request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// POST (default).
    #[default]
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// How a batch becomes requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchFormat {
    /// One request per record (default).
    #[default]
    None,
    /// One request per batch, the bodies in a JSON array.
    JsonArray,
    /// One request per batch, one body per line (`application/x-ndjson`).
    Ndjson,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyCompression {
    /// As is.
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// Sends records to an HTTP(S) endpoint, EventBridge API-destination style: one request per
/// record, or per batch with `batch_format` (the runner's `batch:` sets the size). A record is
/// delivered when the server answers 2xx. 408, 429, 5xx, timeouts and connection errors are
/// retried with the runner's backoff, no sooner than the server's `Retry-After`; any other status
/// sends the record to `on_error` (the dead-letter queue by default) with the status and the
/// start of the response body. `max_in_flight` (a runner option) bounds the requests in flight;
/// with the default of 1, records reach the server one at a time and in order.
///
/// As the pipeline's `dlq:`, the sink sends each dead letter as the envelope, its error headers
/// included (`headers` of the body), unless `envelope: false` or a `body:` template is set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The URL, a template (`https://api.example.com/customers/<$.value.customer.id>/events`).
    pub url: String,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    #[serde(default)]
    pub method: Method,
    /// Headers to send; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as a template; by default the record's value as JSON.
    #[serde(default)]
    pub body: Option<String>,
    /// Send the whole event `{topic, partition, offset, timestamp, key, headers, value}` as the
    /// JSON body instead of the value (default: false, and true for a `dlq:` without `body`, so
    /// dead letters keep their error headers). Not with `body`.
    #[serde(default)]
    pub envelope: Option<bool>,
    /// `none` (a request per record), `json_array` or `ndjson` (a request per batch).
    #[serde(default)]
    pub batch_format: BatchFormat,
    /// `gzip` compresses request bodies. Compressed responses are always accepted.
    #[serde(default)]
    pub compression: BodyCompression,
    /// Authentication: `basic`, `bearer`, `api_key` or `oauth2` (client credentials).
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// TLS: a CA file, a client certificate for mutual TLS.
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// Time allowed for each request, response included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Most requests per second (EventBridge's invocation rate limit); unlimited when absent.
    #[serde(default)]
    pub rate_limit_per_sec: Option<f64>,
    /// The statuses to retry, replacing the default (408, 429 and 5xx).
    #[serde(default)]
    pub retry_statuses: Vec<u16>,
    /// Sent in the idempotency header so a receiver can drop the duplicates at-least-once
    /// delivery implies. By default `<topic>-<partition>-<offset>` of records that have Kafka
    /// coordinates; or a template; empty for no header. A batch request sends its first
    /// record's key and the record count (`<key>+<n>`).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The idempotency header's name.
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}
