//! Weir's operations API over HTTP(S): a thin layer over the supervisor (handlers translate HTTP
//! to supervisor calls and back). Pipelines (create, replace, delete, pause, resume, stop, start,
//! restart), status, consumer-group offsets, validation, the plugin catalogue, liveness,
//! readiness and Prometheus metrics, described by an OpenAPI 3.1 document generated from the
//! handlers. Mutating calls need a bearer token when one is configured, compared in constant
//! time; without a token the API only listens on loopback.

mod error;
mod listen;
mod ops;
mod pipelines;
pub mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weir_runtime::supervisor::Supervisor;

pub use error::{ApiError, ErrorBody, ErrorDetail, LocatedProblem};

/// The default limit of a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How the API listens.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Address and port.
    pub listen: SocketAddr,
    /// The bearer token mutating calls need; `None` means none (loopback only).
    pub token: Option<String>,
    /// Serve over TLS with this PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest request body.
    pub body_limit: usize,
    /// A connection whose writes make no progress for this long is closed (a client that
    /// stopped reading an event stream).
    pub send_timeout: std::time::Duration,
}

/// The default send timeout: 30 s.
pub const DEFAULT_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No token, and an address other machines can reach.
    #[error(
        "refusing to listen on {0} without a token: the API changes pipelines. Set --token-file (or WEIR_ADMIN_TOKEN), or listen on 127.0.0.1 / [::1]"
    )]
    Unprotected(SocketAddr),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files cannot be used.
    #[error("cannot use the TLS certificate {cert} and key {key}: {source}")]
    Tls {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct Api {
    sup: Supervisor,
    token: Option<Arc<str>>,
}

/// Checks the bearer token of a mutating request (constant time).
pub(crate) fn require_token(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(want) = &api.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(want.as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not the one configured",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this call changes pipelines: send Authorization: Bearer <token>",
        )),
    }
}

/// A path parameter whose rejection (bad percent-encoding) is answered in the API's error shape.
pub(crate) struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Weir operations API", description = "Pipelines, status, offsets, validation, plugins, health and metrics of `weir serve`."),
    modifiers(&BearerAuth),
    tags(
        (name = "pipelines", description = "Create, change and operate pipelines"),
        (name = "offsets", description = "Consumer-group offsets of Kafka pipelines"),
        (name = "plugins", description = "The plugin catalogue"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "streams", description = "Server-Sent Events of `sse` sinks")
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(ops::livez))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::validate))
        .routes(routes!(ops::plugins))
        .routes(routes!(ops::plugin))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(
            pipelines::get,
            pipelines::replace,
            pipelines::delete
        ))
        .routes(routes!(pipelines::status))
        .routes(routes!(pipelines::pause))
        .routes(routes!(pipelines::resume))
        .routes(routes!(pipelines::stop))
        .routes(routes!(pipelines::start))
        .routes(routes!(pipelines::restart))
        .routes(routes!(
            pipelines::offsets,
            pipelines::set_offsets,
            pipelines::reset_offsets
        ))
        .routes(routes!(pipelines::usage))
        .routes(routes!(sse::http::stream))
}

/// Referenced by the binary so the linker keeps this crate's plugin registrations (the `sse`
/// sink).
pub fn link() {}

/// The OpenAPI document of the API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_router().split_for_parts();
    doc.paths.paths.insert(
        "/v1/openapi.json".into(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("health")
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The OpenAPI 3.1 document")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::ObjectBuilder::new()))
                                .build(),
                        ),
                )
                .build(),
        ),
    );
    doc
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint (see /v1/openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (see /v1/openapi.json)",
    )
}

/// The API's router, for embedding or tests.
pub fn router(sup: Supervisor, cfg: &AdminConfig) -> axum::Router {
    let doc = openapi();
    let (router, _) = api_router().split_for_parts();
    let state = Api {
        sup,
        token: cfg.token.as_deref().map(Arc::from),
    };
    router
        .route(
            "/v1/openapi.json",
            get(move || async move { Json(doc).into_response() }),
        )
        .merge(sse::preflight_route())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .with_state(state)
}

/// True when `addr` only accepts connections from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A bound API listener.
pub struct Listener {
    cfg: AdminConfig,
    std: std::net::TcpListener,
}

impl Listener {
    /// Binds the address, refusing a non-loopback one without a token.
    pub fn bind(cfg: AdminConfig) -> Result<Listener, AdminError> {
        if cfg.token.is_none() && !is_loopback(&cfg.listen) {
            return Err(AdminError::Unprotected(cfg.listen));
        }
        let std = listen::bind(cfg.listen).map_err(|source| AdminError::Bind {
            addr: cfg.listen,
            source,
        })?;
        Ok(Listener { cfg, std })
    }

    /// The address it listens on (the port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.std.local_addr().unwrap_or(self.cfg.listen)
    }

    /// Serves the API until `shutdown` is cancelled, then finishes the requests in progress.
    pub async fn serve(
        self,
        sup: Supervisor,
        shutdown: CancellationToken,
    ) -> Result<(), AdminError> {
        let app = router(sup, &self.cfg);
        // Event streams never end by themselves: end them when the API stops, so its graceful
        // shutdown does not wait for them.
        let ending = shutdown.clone();
        tokio::spawn(async move {
            ending.cancelled().await;
            sse::hub::HUB.close_all();
        });
        listen::serve(
            self.std,
            self.cfg.tls.as_ref(),
            app,
            shutdown,
            self.cfg.send_timeout,
        )
        .await
        .map_err(|e| match (e, &self.cfg.tls) {
            (listen::ServeError::Tls(source), Some((cert, key))) => AdminError::Tls {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
                source,
            },
            (listen::ServeError::Tls(e) | listen::ServeError::Io(e), _) => AdminError::Serve(e),
        })
    }
}
