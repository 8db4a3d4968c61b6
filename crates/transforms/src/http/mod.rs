//! `http`: enriches each record with a call to an HTTP(S) endpoint, EventBridge Pipes style.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::path::Segment;
use weir_core::template::{Template, TemplateContext};
use weir_core::{
    BuildContext, BuildError, Flow, HumanDuration, PluginConfig, Record, Transform, TransformError,
};
use weir_http::{Failure, HttpAuth, HttpClient, HttpTls, RequestTemplates};

use crate::enrich::{self, TtlCache};

/// The request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET: no body.
    Get,
    /// POST (default): the body is the record's value, or `body`.
    #[default]
    Post,
    /// PUT.
    Put,
}

/// A response cache.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The cache key, a template (`<$.value.customer.id>`).
    pub key: String,
    /// How long an answer is reused.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// Most answers kept; the oldest go first.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn default_ttl() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_max_entries() -> usize {
    10_000
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_concurrency() -> usize {
    16
}

/// Calls an endpoint for each record and merges the JSON answer into it, as an EventBridge
/// Pipes enrichment does. With `target`, the answer is set at that value path; without, it
/// replaces the value. An empty answer (`null`, `{}`, `[]`, or no body) drops the record; an
/// array answer without `target` becomes one record per element. Requests for the records of a
/// batch run `concurrency` at a time and the records keep their order. 408, 429, 5xx and
/// connection errors are retried with the runner's backoff; other statuses fail the record,
/// which then follows `on_error` (`dlq`, `drop`, `keep` or `stop`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTransformConfig {
    /// The URL, a template (`https://crm.example.com/customers/<$.value.customer.id>`).
    pub url: String,
    /// `GET`, `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: Method,
    /// Headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as a template; by default the record's value (not sent with GET).
    #[serde(default)]
    pub body: Option<String>,
    /// Where the answer goes (`value.customer`); the whole value when absent.
    #[serde(default)]
    pub target: Option<String>,
    /// Reuse answers by key for a while.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Requests in flight at once within a batch.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Time allowed for each request.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Authentication, as on the `http` sink.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// TLS, as on the `http` sink.
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// The statuses to retry, replacing the default (408, 429 and 5xx).
    #[serde(default)]
    pub retry_statuses: Vec<u16>,
}

/// The compiled enrichment.
pub struct HttpTransform {
    client: HttpClient,
    method: reqwest::Method,
    request: RequestTemplates,
    target: Option<Vec<Segment>>,
    cache: Option<Cache>,
    concurrency: usize,
    pipeline: String,
}

struct Cache {
    key: Template,
    answers: TtlCache,
}

impl PluginConfig for HttpTransformConfig {
    const TYPE: &'static str = "http";
    const SUMMARY: &'static str = "Enrich records with an HTTP(S) call (Pipes enrichment)";
    const EXAMPLE: &'static str = r#"type: http
url: https://crm.example.com/customers/<$.value.customer.id>
method: GET
target: value.customer
cache: { key: "<$.value.customer.id>", ttl: 5m, max_entries: 50000 }
auth: { type: bearer, token: "${CRM_TOKEN:-change-me}" }
"#;
    type Output = dyn Transform;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        let request = RequestTemplates::compile(&self.url, &self.headers, self.body.as_deref())?;
        let tpl = |text: &str, at: &str| {
            Template::compile(text).map_err(|e| BuildError::at(at, e.to_string()))
        };
        let target = enrich::target(self.target.as_deref(), "value.customer")?;
        let cache = match self.cache {
            None => None,
            Some(c) => Some(Cache {
                key: tpl(&c.key, "cache.key")?,
                answers: TtlCache::new(c.ttl.into(), c.max_entries),
            }),
        };
        if self.concurrency == 0 {
            return Err(BuildError::at("concurrency", "must be at least 1"));
        }
        let client = HttpClient::new(
            self.auth.as_ref(),
            self.tls.as_ref(),
            self.timeout.into(),
            &self.retry_statuses,
        )
        .map_err(|e| BuildError::at("", e.to_string()))?
        .with_latency(&cx.telemetry);
        Ok(Box::new(HttpTransform {
            client,
            method: match self.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
            },
            request,
            target,
            cache,
            concurrency: self.concurrency,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(HttpTransformConfig);

impl HttpTransform {
    async fn call(&self, record: &mut Record) -> Result<Json, TransformError> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        let fatal = |what: &str, e: weir_core::template::TemplateError| {
            TransformError::Fatal(format!("cannot render the {what} template: {e}"))
        };
        let key = match &self.cache {
            Some(c) => {
                let k = c
                    .key
                    .render_text(record, &cx)
                    .map_err(|e| fatal("cache.key", e))?;
                if let Some(hit) = c.answers.get(&k) {
                    return Ok(hit);
                }
                Some(k)
            }
            None => None,
        };
        let with_body = self.method != reqwest::Method::GET;
        let rendered = self
            .request
            .render(record, &cx, with_body)
            .map_err(TransformError::Fatal)?;
        let (url, headers, body) = (&rendered.url, &rendered.headers, &rendered.body);
        let resp = self
            .client
            .send(|c| {
                let mut b = c
                    .request(self.method.clone(), url)
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some((bytes, ct)) = body {
                    b = b
                        .header(reqwest::header::CONTENT_TYPE, *ct)
                        .body(bytes.clone());
                }
                for (n, v) in headers {
                    b = b.header(n.clone(), v);
                }
                b
            })
            .await
            .map_err(|f| match f {
                Failure::Retriable { message, .. } => TransformError::Retriable(message),
                other => TransformError::Fatal(other.message().to_owned()),
            })?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TransformError::Retriable(format!("reading the answer: {e}")))?;
        let answer: Json = if bytes.iter().all(u8::is_ascii_whitespace) {
            Json::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                TransformError::Fatal(format!("the answer from {url} is not JSON: {e}"))
            })?
        };
        if let (Some(c), Some(k)) = (&self.cache, key) {
            c.answers.put(k, answer.clone());
        }
        Ok(answer)
    }

    async fn enrich(&self, record: &mut Record) -> Result<Flow, TransformError> {
        let answer = self.call(record).await?;
        if enrich::is_empty(&answer) {
            return Ok(Flow::Drop);
        }
        enrich::merge(record, self.target.as_deref(), answer)
    }
}

#[async_trait]
impl Transform for HttpTransform {
    fn apply(&self, _: &mut Record) -> Result<Flow, TransformError> {
        Err(TransformError::Fatal(
            "the http enrichment runs batched (is_batched); apply_batch was not used".into(),
        ))
    }

    fn stage(&self) -> &'static str {
        "enrich"
    }

    fn is_batched(&self) -> bool {
        true
    }

    async fn apply_batch(&self, records: &mut [Record]) -> Vec<Result<Flow, TransformError>> {
        type Call<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Flow, TransformError>> + Send + 'a>,
        >;
        let calls: Vec<Call<'_>> = records
            .iter_mut()
            .map(|r| Box::pin(self.enrich(r)) as Call<'_>)
            .collect();
        // In order, `concurrency` at a time.
        stream::iter(calls)
            .buffered(self.concurrency)
            .collect()
            .await
    }
}
