//! Options of the `sse` sink.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::HumanDuration;
use weir_core::config::Secret;

/// Serves the records to browsers and other clients as Server-Sent Events on
/// `GET /v1/streams/{stream}`: on `weir serve`'s listener, and on `listen:` when given (the way
/// to serve a stream from `weir run`). One pipeline feeds any number of clients through a
/// bounded in-memory ring; a client that reconnects with `Last-Event-ID` gets every event after
/// it that the ring still holds, and an explicit `event: reset` when its position is gone. With
/// `auth`, each client presents a JWT and, with `auth.tenant_claim`, sees only its tenant's
/// records whatever its `?filter=` asks. A record is done for this sink once it is in the ring:
/// an SSE client is not a durable receiver (docs/connectors/sse.md says what a client can miss).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SseSinkConfig {
    /// The stream's name, the last part of its URL. Default: the pipeline's name.
    #[serde(default)]
    pub stream: Option<String>,
    /// Also serve the stream on this address with a listener of its own (needed under
    /// `weir run`, which has no API listener).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// TLS (and HTTP/2) for `listen`: a PEM certificate chain and its key.
    #[serde(default)]
    pub tls: Option<SseTls>,
    /// Most events the ring holds for resuming clients.
    #[serde(default = "default_ring_events")]
    pub ring_max_events: usize,
    /// Most bytes the ring holds: each event's encoded frame plus the record's bytes kept for
    /// per-client filters.
    #[serde(default = "default_ring_bytes")]
    pub ring_max_bytes: usize,
    /// The `event:` field, a template (`<$.value.type>`). Default: the record's topic
    /// (`message` for records without one).
    #[serde(default)]
    pub event: Option<String>,
    /// The `data:` field, a Pipes template. Default: the record's value as JSON text, unchanged.
    #[serde(default)]
    pub data: Option<String>,
    /// Which tenant a record belongs to, a text template (`<$.value.ccid>`). Default: the
    /// tenant the source or a transform gave the record. A record without a tenant is sent
    /// only to clients that are not restricted to one.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The reconnection delay sent to clients as the SSE `retry:` field. (`retry` itself is the
    /// runner's option for the sink's write retries.)
    #[serde(default = "default_retry")]
    pub client_retry: HumanDuration,
    /// A comment line is sent this often so proxies and clients see the connection alive.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: HumanDuration,
    /// Bytes a client may have waiting to be sent: a client with more than this still waiting
    /// when the next batch arrives is disconnected (and can resume by its last id), so its
    /// queue holds at most this plus one batch. It never slows the pipeline or others.
    #[serde(default = "default_client_queue")]
    pub client_queue_bytes: usize,
    /// On `listen`, a connection whose writes make no progress for this long is closed (a
    /// client that stopped reading; it was already dropped from the stream). On `weir serve`'s
    /// listener, `--send-timeout` sets it.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// Most clients connected at once; more are answered 503.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Origins browsers may connect from (`https://app.example.com`, or `*`). Empty: no CORS
    /// headers, so only same-origin pages can use the stream.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Authentication of clients by JWT. Without it the stream is public.
    #[serde(default)]
    pub auth: Option<SseAuth>,
}

/// The certificate and key of an SSE listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SseTls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// JWT authentication: exactly one of `hs256_secret`, `public_key_file`, `jwks_file`. Tokens
/// come from `Authorization: Bearer`, then the cookie `cookie`, then the `access_token` query
/// parameter; a missing or invalid token is answered 401. The token must carry `exp`; the
/// connection is closed when it expires.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SseAuth {
    /// The shared secret of HS256 tokens (a secret: `${JWT_SECRET}` or `file:…`).
    #[serde(default)]
    pub hs256_secret: Option<Secret>,
    /// A PEM public key (RSA for RS256, EC P-256 for ES256).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// A JSON Web Key Set file; the token's `kid` picks the key.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The algorithms accepted. Default: HS256 for a secret, RS256 for an RSA key, ES256 for an
    /// EC key, and the keys' own for a JWKS.
    #[serde(default)]
    pub algorithms: Vec<JwtAlgorithm>,
    /// The claim whose value is the client's tenant (`ccid`): the client sees only records whose
    /// tenant equals it, and a token without it is refused.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// The cookie a browser sends the token in.
    #[serde(default = "default_cookie")]
    pub cookie: String,
    /// When set, the token's `iss` must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, the token's `aud` must contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew allowed when checking `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
}

/// A JWT signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

fn default_ring_events() -> usize {
    10_000
}
fn default_ring_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_retry() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3))
}
fn default_heartbeat() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15))
}
fn default_send_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn default_client_queue() -> usize {
    1024 * 1024
}
fn default_max_clients() -> usize {
    100_000
}
fn default_cookie() -> String {
    "weir_token".into()
}
fn default_leeway() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
