//! `sse`: serves records to browsers and other clients as Server-Sent Events, with resume by
//! event id, per-client filters and JWT tenant isolation (docs/connectors/sse.md).

mod auth;
pub mod config;
pub(crate) mod http;
pub mod hub;
pub mod id;

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, PluginConfig, Record, RecordOutcome, Sink, SinkError};

pub use config::SseSinkConfig;
pub use http::{StreamQuery, preflight_route, routes};
use hub::{Draft, HUB, Lease, Metrics, Settings};

/// The `sse` sink: renders each record into an event and puts it in its stream's ring.
pub struct SseSink {
    name: String,
    /// Taken by `open`: a build alone (`weir validate`, the API's validation) touches no stream.
    start: Mutex<Option<(Settings, Metrics)>>,
    listen: Option<std::net::SocketAddr>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    send_timeout: std::time::Duration,
    lease: OnceLock<Lease>,
    event: Option<Template>,
    data: Option<Template>,
    tenant: Option<Template>,
    pipeline: String,
}

fn template(option: &str, text: &Option<String>) -> Result<Option<Template>, BuildError> {
    text.as_deref()
        .map(|t| Template::compile(t).map_err(|e| BuildError::at(option, e.to_string())))
        .transpose()
}

impl PluginConfig for SseSinkConfig {
    const TYPE: &'static str = "sse";
    const SUMMARY: &'static str =
        "Serve records to browsers as Server-Sent Events (resume by id, filters, JWT tenants)";
    const EXAMPLE: &'static str = r#"type: sse
stream: events
event: <$.value.type>
tenant: <$.value.ccid>
auth:
  hs256_secret: ${SSE_JWT_SECRET}
  tenant_claim: ccid
cors_origins: [https://app.example.com]
"#;
    type Output = dyn Sink;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let name = self
            .stream
            .clone()
            .unwrap_or_else(|| cx.pipeline.to_string());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(BuildError::at(
                "stream",
                format!("`{name}` cannot be a URL segment: use letters, digits, `-`, `_`, `.`"),
            ));
        }
        if self.ring_max_events == 0 {
            return Err(BuildError::at("ring_max_events", "must be at least 1"));
        }
        if self.tls.is_some() && self.listen.is_none() {
            return Err(BuildError::at("tls", "`tls` is for `listen`; give both"));
        }
        let auth = self
            .auth
            .as_ref()
            .map(auth::Authenticator::new)
            .transpose()?;
        let settings = Settings {
            auth,
            cors_origins: self.cors_origins.clone(),
            heartbeat: self.heartbeat.0,
            retry: self.client_retry.0,
            client_queue_bytes: self.client_queue_bytes,
            max_clients: self.max_clients,
            ring_max_events: self.ring_max_events,
            ring_max_bytes: self.ring_max_bytes,
        };
        let t = &cx.telemetry;
        let metrics = Metrics {
            clients: t.gauge("weir_sse_clients", "Clients connected to the stream", &[]),
            slow: t.counter(
                "weir_sse_client_disconnects_total",
                "Clients disconnected by the server",
                &[("reason", "slow")],
            ),
            expired: t.counter(
                "weir_sse_client_disconnects_total",
                "Clients disconnected by the server",
                &[("reason", "token_expired")],
            ),
            resets: t.counter(
                "weir_sse_resets_total",
                "Clients whose position was gone when they connected (sent event: reset)",
                &[],
            ),
            ring_events: t.gauge("weir_sse_ring_events", "Events the ring holds", &[]),
        };
        let event = template("event", &self.event)?;
        let data = template("data", &self.data)?;
        let tenant = template("tenant", &self.tenant)?;
        Ok(Box::new(SseSink {
            name,
            start: Mutex::new(Some((settings, metrics))),
            listen: self.listen,
            tls: self.tls.map(|t| (t.cert_file, t.key_file)),
            send_timeout: self.send_timeout.0,
            lease: OnceLock::new(),
            event,
            data,
            tenant,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(SseSinkConfig);

impl SseSink {
    fn draft(&self, record: &Record) -> Result<Draft, String> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        let mut view = Record {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
            timestamp: record.timestamp,
            meta: record.meta.clone(),
            ack: Default::default(),
        };
        // Filters read the parsed value; a value that is not JSON is matched as absent.
        let _ = view.value.json();
        let event = match &self.event {
            Some(t) => t
                .render_text(&mut view, &cx)
                .map_err(|e| format!("event: {e}"))?,
            None => record
                .meta
                .origin
                .as_ref()
                .map(|o| o.topic.to_string())
                .unwrap_or_else(|| "message".into()),
        };
        let data = match &self.data {
            Some(t) => {
                let v = t.render(&mut view, &cx).map_err(|e| format!("data: {e}"))?;
                v.to_string()
            }
            None => String::from_utf8_lossy(&record.value.to_bytes()).into_owned(),
        };
        let tenant = match &self.tenant {
            Some(t) => {
                let s = t
                    .render_text(&mut view, &cx)
                    .map_err(|e| format!("tenant: {e}"))?;
                (!s.is_empty()).then(|| Arc::<str>::from(s))
            }
            None => record.meta.tenant.clone(),
        };
        // The ring keeps the record's bytes (shared, not copied) without the parsed tree, which
        // takes about ten times the text; filters parse it when a filtered client needs it.
        let kept = Record {
            value: weir_core::Value::from_bytes(record.value.to_bytes()),
            ack: Default::default(),
            ..view
        };
        Ok(Draft {
            position: record
                .meta
                .origin
                .as_ref()
                .map(|o| ((id::topic_hash(&o.topic), o.partition), o.offset)),
            time_ms: record.timestamp.unwrap_or_else(weir_core::time::now_millis),
            tenant,
            event: hub::single_line(&event),
            data,
            view: kept,
        })
    }
}

#[async_trait]
impl Sink for SseSink {
    async fn open(&self) -> Result<(), SinkError> {
        let Some((settings, metrics)) = self.start.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return Ok(());
        };
        let lease = HUB
            .lease(&self.name, &self.pipeline, settings, metrics)
            .map_err(|t| {
                SinkError::Fatal(format!(
                    "the stream `{}` is already fed by the pipeline `{}`",
                    self.name, t.by
                ))
            })?;
        let stop = tokio_util::sync::CancellationToken::new();
        match self.listen {
            Some(addr) => {
                if lease.stream.set_listener(Some(addr), stop.clone()) {
                    let l = http::bind(addr).map_err(|e| {
                        lease.stream.set_listener(None, stop.clone());
                        SinkError::retriable(format!("cannot listen on {addr}: {e}"))
                    })?;
                    tracing::info!(stream = %self.name, %addr, tls = self.tls.is_some(), "serving the SSE stream");
                    http::spawn_listener(
                        l,
                        self.tls.clone(),
                        stop,
                        self.name.clone(),
                        self.send_timeout,
                    );
                }
            }
            None => {
                lease.stream.set_listener(None, stop);
            }
        }
        let _ = self.lease.set(lease);
        Ok(())
    }

    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut drafts = Vec::with_capacity(records.len());
        let mut outcomes = Vec::with_capacity(records.len());
        for r in records {
            match self.draft(r) {
                Ok(d) => {
                    drafts.push(d);
                    outcomes.push(RecordOutcome::Delivered);
                }
                Err(e) => outcomes.push(RecordOutcome::Fatal(e)),
            }
        }
        let failed = drafts.len() < records.len();
        let Some(lease) = self.lease.get() else {
            return Err(SinkError::retriable("the sse sink was not opened"));
        };
        lease.stream.publish(drafts);
        if failed {
            Err(SinkError::Partial {
                outcomes,
                retry_after: None,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
