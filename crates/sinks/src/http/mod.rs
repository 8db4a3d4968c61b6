//! `http`: sends records to an HTTP(S) endpoint, one request per record or per batch.

mod config;
#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, PluginConfig, Record, RecordOutcome, Sink, SinkError};
use weir_http::{Failure, HttpClient, RequestTemplates};

pub use config::{BatchFormat, BodyCompression, HttpSinkConfig, Method};

/// The compiled sink.
pub struct HttpSink {
    client: HttpClient,
    method: reqwest::Method,
    request: RequestTemplates,
    batch_format: BatchFormat,
    /// Send the whole event as the body (the default for a `dlq:`).
    envelope: bool,
    gzip: bool,
    idempotency: Idempotency,
    idempotency_header: reqwest::header::HeaderName,
    permits: Arc<Semaphore>,
    ordered: bool,
    pacer: Option<Pacer>,
    pipeline: String,
}

enum Idempotency {
    Off,
    Coordinates,
    Template(Template),
}

/// Spaces requests `1 / rate` apart across all concurrent requests of the sink.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

impl PluginConfig for HttpSinkConfig {
    const TYPE: &'static str = "http";
    const SUMMARY: &'static str = "Send records to an HTTP(S) endpoint (API destinations)";
    const EXAMPLE: &'static str = r#"type: http
url: https://api.example.com/v1/alerts/<$.value.customer.id>
method: POST
headers:
  x-source: weir-<weir.pipeline>
auth: { type: oauth2, token_url: https://auth.example.com/token, client_id: weir, client_secret: "${ALERTS_SECRET:-change-me}" }
rate_limit_per_sec: 300
max_in_flight: 16
"#;
    type Output = dyn Sink;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let envelope = match (self.envelope, &self.body) {
            (Some(true), Some(_)) => {
                return Err(BuildError::at(
                    "envelope",
                    "give `body` (a template) or `envelope: true`, not both",
                ));
            }
            (Some(e), _) => e,
            (None, body) => cx.is_dlq && body.is_none(),
        };
        let request = RequestTemplates::compile(&self.url, &self.headers, self.body.as_deref())?;
        let tpl = |text: &str, path: &str| {
            Template::compile(text).map_err(|e| BuildError::at(path, e.to_string()))
        };
        let idempotency = match self.idempotency_key.as_deref() {
            None => Idempotency::Coordinates,
            Some("") => Idempotency::Off,
            Some(t) => Idempotency::Template(tpl(t, "idempotency_key")?),
        };
        let idempotency_header =
            reqwest::header::HeaderName::from_bytes(self.idempotency_header.as_bytes())
                .map_err(|e| BuildError::at("idempotency_header", e.to_string()))?;
        let pacer = match self.rate_limit_per_sec {
            None => None,
            Some(r) if r > 0.0 && r.is_finite() => Some(Pacer {
                interval: Duration::from_secs_f64(1.0 / r),
                next: Mutex::new(Instant::now()),
            }),
            Some(r) => {
                return Err(BuildError::at(
                    "rate_limit_per_sec",
                    format!("must be a positive number, found {r}"),
                ));
            }
        };
        let client = HttpClient::new(
            self.auth.as_ref(),
            self.tls.as_ref(),
            self.timeout.into(),
            &self.retry_statuses,
        )
        .map_err(|e| BuildError::at("", e.to_string()))?
        .with_latency(&cx.telemetry);
        let in_flight = cx.options.max_in_flight.unwrap_or(1).max(1);
        Ok(Box::new(HttpSink {
            client,
            method: match self.method {
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
                Method::Patch => reqwest::Method::PATCH,
                Method::Delete => reqwest::Method::DELETE,
            },
            request,
            batch_format: self.batch_format,
            envelope,
            gzip: self.compression == BodyCompression::Gzip,
            idempotency,
            idempotency_header,
            permits: Arc::new(Semaphore::new(in_flight)),
            ordered: in_flight == 1,
            pacer,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(HttpSinkConfig);

/// One request, rendered.
struct Request {
    url: String,
    headers: Vec<(reqwest::header::HeaderName, String)>,
    body: Bytes,
    content_type: &'static str,
}

impl HttpSink {
    fn render(&self, record: &Record) -> Result<(Request, Option<String>), String> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        // Templates may decode the value: render on a view, the batch stays shared.
        let mut view = record.clone();
        let r = self.request.render(&mut view, &cx, true)?;
        let (mut body, content_type) = r.body.expect("rendered with a body");
        if self.envelope {
            body = envelope(record);
        }
        let key = match &self.idempotency {
            Idempotency::Off => None,
            Idempotency::Coordinates => record
                .meta
                .origin
                .as_ref()
                .map(|o| format!("{}-{}-{}", o.topic, o.partition, o.offset)),
            Idempotency::Template(t) => Some(
                t.render_text(&mut view, &cx)
                    .map_err(|e| format!("cannot render the idempotency_key template: {e}"))?,
            )
            .filter(|k| !k.is_empty()),
        };
        Ok((
            Request {
                url: r.url,
                headers: r.headers,
                body,
                content_type,
            },
            key,
        ))
    }

    async fn send(&self, mut req: Request, key: Option<String>) -> Result<(), Failure> {
        // Compressed before waiting, so neither a permit nor a rate-limit slot waits on it.
        let gzipped = self.gzip;
        if gzipped {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(req.body.len() / 4),
                flate2::Compression::fast(),
            );
            enc.write_all(&req.body).expect("writing to memory");
            req.body = enc.finish().expect("writing to memory").into();
        }
        let _permit = self.permits.acquire().await.expect("never closed");
        if let Some(p) = &self.pacer {
            p.wait().await;
        }
        let req = &req;
        self.client
            .send(|c| {
                let mut b = c
                    .request(self.method.clone(), &req.url)
                    .header(reqwest::header::CONTENT_TYPE, req.content_type)
                    .body(req.body.clone());
                if gzipped {
                    b = b.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
                if let Some(k) = &key {
                    b = b.header(self.idempotency_header.clone(), k);
                }
                for (n, v) in &req.headers {
                    b = b.header(n.clone(), v);
                }
                b
            })
            .await
            .map(|_| ())
    }

    /// One record's request: rendered and sent; a template that cannot render rejects it.
    async fn deliver(&self, record: &Record) -> Result<(), Failure> {
        match self.render(record) {
            Ok((req, key)) => self.send(req, key).await,
            Err(message) => Err(Failure::Rejected { status: 0, message }),
        }
    }

    /// One request per record. With one request in flight the records go in order and the first
    /// retriable failure stops the batch (the rest are retried after it, still in order).
    async fn write_each(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut outcomes: Vec<Option<Result<(), Failure>>> = Vec::with_capacity(records.len());
        if self.ordered {
            let mut stopped = false;
            for r in records {
                if stopped {
                    outcomes.push(None);
                    continue;
                }
                let out = self.deliver(r).await;
                stopped = matches!(out, Err(Failure::Retriable { .. }));
                outcomes.push(Some(out));
            }
        } else {
            outcomes.extend(
                futures_util::future::join_all(records.iter().map(|r| self.deliver(r)))
                    .await
                    .into_iter()
                    .map(Some),
            );
        }
        summarize(outcomes)
    }

    /// One record's body in a batch request (URL, headers and key come from the first).
    fn body(&self, record: &Record) -> Result<Bytes, String> {
        if self.envelope {
            return Ok(envelope(record));
        }
        if self.request.body_is_value() {
            return Ok(record.value.to_bytes());
        }
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        let mut view = record.clone();
        self.request.render_body(&mut view, &cx).map(|(b, _)| b)
    }

    /// One request for the whole batch.
    async fn write_batch(&self, records: &[Record]) -> Result<(), SinkError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let (mut req, key) = self.render(first).map_err(SinkError::Fatal)?;
        let mut body =
            Vec::with_capacity(records.iter().map(Record::approx_size).sum::<usize>() + 2);
        if self.batch_format == BatchFormat::JsonArray {
            body.push(b'[');
        }
        for (i, r) in records.iter().enumerate() {
            if self.batch_format == BatchFormat::JsonArray && i > 0 {
                body.push(b',');
            }
            if i == 0 {
                body.extend_from_slice(&req.body);
            } else {
                body.extend_from_slice(&self.body(r).map_err(SinkError::Fatal)?);
            }
            if self.batch_format == BatchFormat::Ndjson {
                body.push(b'\n');
            }
        }
        if self.batch_format == BatchFormat::JsonArray {
            body.push(b']');
        }
        req.body = body.into();
        req.content_type = match self.batch_format {
            BatchFormat::Ndjson => "application/x-ndjson",
            _ => "application/json",
        };
        let key = key.map(|k| format!("{k}+{}", records.len()));
        match self.send(req, key).await {
            Ok(()) => Ok(()),
            Err(Failure::Retriable {
                message,
                retry_after,
            }) => Err(SinkError::Retriable {
                message,
                retry_after,
            }),
            Err(f) => Err(SinkError::Fatal(f.message().to_owned())),
        }
    }
}

/// The record as the JSON envelope, with its headers (a dead letter's error headers).
fn envelope(record: &Record) -> Bytes {
    let mut buf = Vec::with_capacity(record.approx_size() + 128);
    crate::ndjson::write_envelope(record, &mut buf);
    buf.into()
}

/// Per-record results to the runner's terms; `None` = not sent (after a retriable failure).
fn summarize(outcomes: Vec<Option<Result<(), Failure>>>) -> Result<(), SinkError> {
    if outcomes.iter().all(|o| matches!(o, Some(Ok(())))) {
        return Ok(());
    }
    // Nothing delivered or rejected: retry the whole batch, honouring the server's delay.
    let all_retriable = outcomes
        .iter()
        .all(|o| matches!(o, None | Some(Err(Failure::Retriable { .. }))));
    let first_retry = outcomes.iter().find_map(|o| match o {
        Some(Err(Failure::Retriable {
            message,
            retry_after,
        })) => Some((message.clone(), *retry_after)),
        _ => None,
    });
    if all_retriable && let Some((message, retry_after)) = first_retry.clone() {
        return Err(SinkError::Retriable {
            message,
            retry_after,
        });
    }
    // The longest delay any server asked for holds for every record retried.
    let retry_after = outcomes
        .iter()
        .filter_map(|o| match o {
            Some(Err(Failure::Retriable { retry_after, .. })) => *retry_after,
            _ => None,
        })
        .max();
    let waiting = first_retry
        .map(|(m, _)| format!("not sent: an earlier record is retried first ({m})"))
        .unwrap_or_default();
    Err(SinkError::Partial {
        outcomes: outcomes
            .into_iter()
            .map(|o| match o {
                Some(Ok(())) => RecordOutcome::Delivered,
                Some(Err(Failure::Retriable { message, .. })) => RecordOutcome::Retriable(message),
                Some(Err(f)) => RecordOutcome::Fatal(f.message().to_owned()),
                None => RecordOutcome::Retriable(waiting.clone()),
            })
            .collect(),
        retry_after,
    })
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        match self.batch_format {
            BatchFormat::None => self.write_each(records).await,
            _ => self.write_batch(records).await,
        }
    }
}
