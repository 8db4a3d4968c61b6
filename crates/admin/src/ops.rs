//! Health, readiness, metrics, validation and the plugin catalogue.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

use crate::ApiPath as Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::registry::PluginEntry;
use weir_runtime::docs;

use crate::Api;
use crate::error::{ApiError, ErrorBody, LocatedProblem};
use crate::pipelines::{Validated, body_text, content_type};

/// The process is alive.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    pub status: &'static str,
}

/// A pipeline that should run and does not.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    /// Pipeline name.
    pub name: String,
    /// Its state and why.
    pub reason: String,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The pipelines whose desired state is `running` and that do not run.
    pub pipelines: Vec<NotReady>,
}

/// Alive: no dependency is checked.
#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, description = "Alive", body = Live)))]
pub(crate) async fn livez() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Ready only when every pipeline whose desired state is `running` runs (finished finite
/// pipelines count); otherwise 503 with a reason per pipeline.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: why, per pipeline", body = Readiness)))]
pub(crate) async fn readyz(State(api): State<Api>) -> Response {
    let not: Vec<NotReady> = api
        .sup
        .readiness()
        .into_iter()
        .map(|(name, reason)| NotReady { name, reason })
        .collect();
    let status = if not.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if not.is_empty() { "ready" } else { "not_ready" },
            pipelines: not,
        }),
    )
        .into_response()
}

/// Metrics in the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn metrics(State(api): State<Api>) -> Response {
    api.sup.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.sup.telemetry().render(),
    )
        .into_response()
}

/// Validates a pipeline body as `weir validate` does, without creating anything.
#[utoipa::path(post, path = "/v1/validate", tag = "pipelines",
    request_body(description = "One pipeline, as JSON or YAML",
        content((crate::pipelines::PipelineBody = "application/json"), (String = "application/yaml"))),
    responses(
        (status = 200, description = "Valid, with warnings", body = Validated),
        (status = 400, description = "Invalid (located problems)", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)))]
pub(crate) async fn validate(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Validated>, ApiError> {
    let text = body_text(body)?;
    let (name, warnings) = api.sup.validate(&text, content_type(&headers))?;
    Ok(Json(Validated {
        name,
        warnings: warnings.iter().map(LocatedProblem::from).collect(),
    }))
}

/// A plugin in the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginSummary {
    /// Its `type:`.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// `source`, `transform` or `sink`.
    pub kind: &'static str,
    /// One line.
    pub summary: &'static str,
}

/// One option of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginOption {
    /// Option name (nested options as `a.b`).
    pub name: String,
    /// Its type, in words.
    #[serde(rename = "type")]
    pub ty: String,
    /// True when it has no default.
    pub required: bool,
    /// The default, as JSON text.
    pub default: Option<String>,
    /// What it does.
    pub description: String,
}

/// A plugin with its options and example.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginDetail {
    /// Its `type:`.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// `source`, `transform` or `sink`.
    pub kind: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The plugin's description.
    pub description: String,
    /// Its options.
    pub options: Vec<PluginOption>,
    /// A complete YAML example.
    pub example: &'static str,
    /// The text `weir plugins <type>` prints.
    pub text: String,
}

/// Plugins.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Every plugin, by kind and name.
    pub plugins: Vec<PluginSummary>,
}

fn summary(e: &PluginEntry) -> PluginSummary {
    PluginSummary {
        type_name: e.type_name,
        kind: e.kind.noun(),
        summary: e.summary,
    }
}

/// Every plugin type, as `weir plugins` lists them.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "The plugins", body = PluginList)))]
pub(crate) async fn plugins(State(api): State<Api>) -> Json<PluginList> {
    Json(PluginList {
        plugins: api.sup.registry().entries().map(summary).collect(),
    })
}

/// One plugin type's options, defaults and example, as `weir plugins <type>` shows them
/// (a name used by several kinds, such as `file`, lists each).
#[utoipa::path(get, path = "/v1/plugins/{type}", tag = "plugins",
    params(("type" = String, Path, description = "Plugin type")),
    responses(
        (status = 200, description = "The plugin(s) of that type", body = [PluginDetail]),
        (status = 404, description = "No such plugin", body = ErrorBody)))]
pub(crate) async fn plugin(
    State(api): State<Api>,
    Path(type_name): Path<String>,
) -> Result<Json<Vec<PluginDetail>>, ApiError> {
    let found: Vec<PluginDetail> = api
        .sup
        .registry()
        .entries()
        .filter(|e| e.type_name == type_name)
        .map(|e| {
            let (description, options) = docs::options(e);
            PluginDetail {
                type_name: e.type_name,
                kind: e.kind.noun(),
                summary: e.summary,
                description,
                options: options
                    .into_iter()
                    .map(|o| PluginOption {
                        name: o.name,
                        ty: o.ty,
                        required: o.required,
                        default: o.default,
                        description: o.description,
                    })
                    .collect(),
                example: e.example,
                text: docs::plugin_text(e),
            }
        })
        .collect();
    if found.is_empty() {
        let names: Vec<&str> = api.sup.registry().entries().map(|e| e.type_name).collect();
        let hint = weir_core::config::did_you_mean(&type_name, names.iter().copied())
            .map(|s| format!(", did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no plugin `{type_name}`{hint}"),
        ));
    }
    Ok(Json(found))
}
