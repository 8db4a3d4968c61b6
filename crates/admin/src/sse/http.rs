//! `GET /v1/streams/{name}`: the Server-Sent Events endpoint, on `weir serve`'s listener and on
//! a sink's own `listen:`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_transforms::filter::{FilterTransform, Pattern};

use super::hub::{ClientGuard, Event, HUB, Start, Stream};
use super::id;
use crate::error::ApiError;
use crate::{ApiPath, ErrorBody};

/// Query parameters of a stream.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
pub struct StreamQuery {
    /// An EventBridge pattern, URL-encoded JSON: only events that match it are sent.
    pub filter: Option<String>,
    /// RFC 3339 time: start with the first event at or after it that the ring holds.
    pub since: Option<String>,
    /// Resume after this event id (what `Last-Event-ID` carries, for clients that cannot set
    /// headers).
    pub lastEventId: Option<String>,
    /// The JWT, for clients that can set neither a header nor a cookie.
    pub access_token: Option<String>,
}

fn cors(stream: &Stream, headers: &HeaderMap, out: &mut HeaderMap) {
    let settings = stream.settings();
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return;
    };
    if settings
        .cors_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, last-event-id, cache-control"),
        );
        out.insert(header::VARY, HeaderValue::from_static("origin"));
    }
}

fn unauthorized(message: String) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"weir\""),
    );
    r
}

fn token<'a>(headers: &'a HeaderMap, q: &'a StreamQuery, cookie: &str) -> Option<&'a str> {
    if let Some(b) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(b.trim());
    }
    for c in headers.get_all(header::COOKIE) {
        let Ok(c) = c.to_str() else { continue };
        for pair in c.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == cookie
            {
                return Some(v);
            }
        }
    }
    q.access_token.as_deref()
}

/// Streams a stream's events as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/v1/streams/{name}",
    tag = "streams",
    params(("name" = String, Path, description = "The stream (an `sse` sink's `stream`)"), StreamQuery),
    responses(
        (status = 200, description = "Server-Sent Events, until the client leaves, falls behind, its token expires or the stream closes", content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad filter or time", body = ErrorBody),
        (status = 401, description = "No token, or one that is not valid", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 503, description = "The stream has as many clients as it takes", body = ErrorBody)
    )
)]
pub async fn stream(
    ApiPath(name): ApiPath<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(stream) = HUB.get(&name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no stream named `{name}` (an `sse` sink's `stream`)"),
        )
        .into_response();
    };
    let mut extra = HeaderMap::new();
    cors(&stream, &headers, &mut extra);
    let mut r = respond(&stream, &q, &headers);
    r.headers_mut().extend(extra);
    r
}

fn respond(stream: &Arc<Stream>, q: &StreamQuery, headers: &HeaderMap) -> Response {
    let settings = stream.settings();
    let identity = match &settings.auth {
        None => None,
        Some(auth) => match token(headers, q, &auth.cookie) {
            None => {
                return unauthorized(format!(
                    "this stream needs a token: send Authorization: Bearer <jwt>, the cookie `{}`, or ?access_token=",
                    auth.cookie
                ));
            }
            Some(t) => match auth.check(t) {
                Ok(i) => Some(i),
                Err(e) => return unauthorized(e),
            },
        },
    };
    let filter = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(text) => {
            let parsed = serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("filter is not JSON: {e}"))
                .and_then(|p| {
                    Pattern::compile(&p)
                        .map_err(|e| format!("filter at `{}`: {}", e.path, e.message))?;
                    FilterTransform::new(&[p]).map_err(|e| e.message)
                });
            match parsed {
                Ok(f) => Some(Arc::new(f)),
                Err(e) => {
                    return ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", e)
                        .into_response();
                }
            }
        }
    };
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.lastEventId.as_deref())
        .filter(|s| !s.trim().is_empty());
    let start = match (last_id, q.since.as_deref()) {
        (Some(text), _) => Start::After(id::decode(text)),
        (None, Some(t)) => {
            match weir_core::time::parse_rfc3339_millis(t) {
                Some(ms) => Start::Since(ms),
                None => {
                    return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_since",
                    format!("since: `{t}` is not an RFC 3339 time with an offset (2026-01-31T12:00:00Z)"),
                )
                .into_response();
                }
            }
        }
        (None, None) => Start::Live,
    };
    let tenant = identity
        .as_ref()
        .and_then(|i| i.tenant.as_deref())
        .map(Arc::<str>::from);
    let sub = match stream.subscribe(start, tenant, filter) {
        Ok(s) => s,
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_clients",
                format!("the stream serves at most {} clients", e.0),
            )
            .into_response();
        }
    };
    let mut first = format!("retry: {}\n", settings.retry.as_millis()).into_bytes();
    first.extend_from_slice(b": weir\n\n");
    if let Some(reset) = &sub.reset {
        first.extend_from_slice(reset);
    }
    let expires = identity.map(|i| {
        let left = i
            .expires
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(left))
    });
    let mut heartbeat = tokio::time::interval(settings.heartbeat.max(Duration::from_millis(10)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Feed {
        _guard: sub.guard,
        first: Some(Bytes::from(first)),
        backlog: sub.backlog.into(),
        rx: sub.rx,
        queued: sub.queued,
        heartbeat,
        expires,
        closed: stream.closed.clone(),
        stream: stream.clone(),
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, Feed::next));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// What one client's response is made of.
struct Feed {
    /// First, so it is dropped first: the client leaves the stream before its queue closes
    /// (otherwise a publish in between sees a closed queue and counts a slow client).
    _guard: ClientGuard,
    first: Option<Bytes>,
    backlog: VecDeque<Arc<Event>>,
    rx: mpsc::UnboundedReceiver<Arc<Event>>,
    queued: Arc<AtomicUsize>,
    heartbeat: tokio::time::Interval,
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
    closed: CancellationToken,
    stream: Arc<Stream>,
    done: bool,
}

/// Events are written in chunks of up to this many bytes.
const CHUNK: usize = 64 * 1024;

impl Feed {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Feed)> {
        if self.done {
            return None;
        }
        if let Some(f) = self.first.take() {
            // The first tick of an interval is immediate; the heartbeat starts after a period.
            self.heartbeat.reset();
            return Some((Ok(f), self));
        }
        if !self.backlog.is_empty() {
            let mut out = BytesMut::new();
            while let Some(e) = self.backlog.front() {
                if !out.is_empty() && out.len() + e.frame.len() > CHUNK {
                    break;
                }
                out.extend_from_slice(&e.frame);
                self.backlog.pop_front();
            }
            return Some((Ok(out.freeze()), self));
        }
        let expired = async {
            match self.expires.as_mut() {
                Some(s) => s.as_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => None,
            _ = expired => {
                if let Some(m) = self.stream.metrics() {
                    m.expired.inc(1);
                }
                self.done = true;
                Some((Ok(Bytes::from_static(b": token expired\n\n")), self))
            }
            e = self.rx.recv() => {
                let e = e?;
                let mut out = BytesMut::from(&e.frame[..]);
                let mut taken = e.frame.len();
                while out.len() < CHUNK {
                    match self.rx.try_recv() {
                        Ok(e) => {
                            taken += e.frame.len();
                            out.extend_from_slice(&e.frame);
                        }
                        Err(_) => break,
                    }
                }
                self.queued.fetch_sub(taken, Ordering::AcqRel);
                self.heartbeat.reset();
                Some((Ok(out.freeze()), self))
            }
            _ = self.heartbeat.tick() => Some((Ok(Bytes::from_static(b":\n\n")), self)),
        }
    }
}

async fn preflight(ApiPath(name): ApiPath<String>, headers: HeaderMap) -> Response {
    let mut out = HeaderMap::new();
    if let Some(s) = HUB.get(&name) {
        cors(&s, &headers, &mut out);
    }
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    (StatusCode::NO_CONTENT, out).into_response()
}

/// The route, for a router of any state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/v1/streams/{name}", get(stream).options(preflight))
}

/// The OPTIONS route alone (the GET is in the API's OpenAPI router).
pub fn preflight_route<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/v1/streams/{name}", axum::routing::options(preflight))
}

/// Serves the stream routes on a sink's own `listen:` until `stop`.
pub fn spawn_listener(
    std: std::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    stop: CancellationToken,
    name: String,
    send_timeout: Duration,
) {
    let addr = std.local_addr().ok();
    let app: axum::Router = routes().fallback(crate::not_found);
    tokio::spawn(async move {
        let ending = stop.clone();
        if let Err(e) = crate::listen::serve(std, tls.as_ref(), app, ending, send_timeout).await {
            tracing::error!(stream = %name, addr = ?addr, error = %e, "the SSE listener failed");
        }
    });
}

/// Binds `addr` (with a backlog for many clients).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    crate::listen::bind(addr)
}
