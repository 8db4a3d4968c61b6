//! The HTTP client the `http` sink and the `http` enrichment share: authentication (basic,
//! bearer, API key, OAuth2 client credentials with a cached token refreshed once on 401), TLS
//! (system roots, a custom CA, a client certificate; verification off only when asked, loudly),
//! and one classification of outcomes (2xx delivered; 408, 429, 5xx and transport errors
//! retriable, honouring `Retry-After`; other 4xx rejected with a body excerpt).

mod auth;
mod config;
mod outcome;
mod request;

use std::sync::Arc;
use std::time::Duration;

pub use auth::OAuth2Token;
pub use config::{ApiKeyIn, HttpAuth, HttpTls, apply_tls};
pub use outcome::{Failure, retry_after};
pub use request::{Rendered, RequestTemplates};

/// Why a client could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// An HTTP client with authentication applied to every request.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    auth: Arc<auth::Auth>,
    retry_statuses: Arc<[u16]>,
    latency: Option<weir_core::telemetry::Histogram>,
}

impl HttpClient {
    /// Builds the client: reads the TLS files and secrets now, so mistakes surface at start-up.
    /// `retry_statuses` replaces the default retriable statuses (408, 429 and 5xx) when not empty.
    pub fn new(
        auth: Option<&HttpAuth>,
        tls: Option<&HttpTls>,
        timeout: Duration,
        retry_statuses: &[u16],
    ) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = tls {
            b = config::apply_tls(b, t)?;
        }
        let client = b.build().map_err(|e| {
            ClientError(format!(
                "cannot build the HTTPS client: {}",
                outcome::chain(&e)
            ))
        })?;
        let auth = auth::Auth::new(auth, client.clone())?;
        Ok(HttpClient {
            client,
            auth: Arc::new(auth),
            retry_statuses: retry_statuses.into(),
            latency: None,
        })
    }

    /// The underlying client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request built by `build` with authentication applied. A 401 with OAuth2 fetches
    /// a new token and sends once more. Returns the response when it is 2xx, else how it failed.
    /// Records every request's duration (response headers received, or failure) in the
    /// component's `weir_http_request_duration_seconds`.
    pub fn with_latency(mut self, t: &weir_core::telemetry::ComponentTelemetry) -> Self {
        self.latency = Some(t.histogram(
            "weir_http_request_duration_seconds",
            "Time from sending an HTTP request to its response headers (or its failure).",
            weir_core::telemetry::LATENCY_BUCKETS,
        ));
        self
    }

    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        let mut refreshed = false;
        loop {
            let req = self.auth.apply(build(&self.client)).await?;
            let started = std::time::Instant::now();
            let sent = req.send().await;
            if let Some(h) = &self.latency {
                h.observe(started.elapsed());
            }
            let resp = sent.map_err(Failure::transport)?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == reqwest::StatusCode::UNAUTHORIZED && !refreshed && self.auth.refreshable()
            {
                self.auth.invalidate().await;
                refreshed = true;
                continue;
            }
            return Err(Failure::from_response(resp, &self.retry_statuses).await);
        }
    }
}
