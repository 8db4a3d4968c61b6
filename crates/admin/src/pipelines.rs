//! `/v1/pipelines`: handlers that translate HTTP to supervisor calls and back, and hold no
//! pipeline logic.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};

use crate::ApiPath as Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_runtime::supervisor::{
    Action, ContentType, OffsetChange, Origin, PartitionOffset, PipelineStatus, PipelineSummary,
};

use crate::error::{ApiError, ErrorBody, LocatedProblem};
use crate::{Api, require_token};

/// A pipeline body: `name:` plus the keys a pipeline has in a file (`source`, `transforms`,
/// `sinks`, `dlq`, `error_budget`, `settings`, `schema_registry`), as JSON or, with
/// `Content-Type: application/yaml`, as YAML, with `${VAR}` and `file:` references.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"name": "orders", "source": {"type": "generator", "rate_per_sec": 10}, "sinks": [{"type": "null"}]}))]
pub struct PipelineBody {
    /// The pipeline's name: 1 to 128 letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Everything else a pipeline has.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// A pipeline's definition (secrets shown as their references) and status.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineView {
    /// Pipeline name.
    pub name: String,
    /// `api` or `file`.
    pub origin: Origin,
    /// The file it comes from, for `file` pipelines.
    pub file: Option<String>,
    /// The definition: inline secrets and URL passwords replaced by `***`, `${VAR}` and
    /// `file:` references shown as written.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// Its status.
    pub status: PipelineStatus,
}

/// Pipelines by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineList {
    /// The pipelines.
    pub pipelines: Vec<PipelineSummary>,
}

/// A definition that validated, with its warnings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validated {
    /// The pipeline's name.
    pub name: String,
    /// Problems that do not stop it (a pattern that never matches), located in the body.
    pub warnings: Vec<LocatedProblem>,
}

/// A pipeline's consumer-group offsets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Offsets {
    /// One entry per topic-partition.
    pub offsets: Vec<PartitionOffset>,
}

/// Partitions to move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetsPatch {
    /// Where each partition goes.
    pub offsets: Vec<OffsetChange>,
}

/// `?dry_run=true` builds and validates without creating.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Build and validate only.
    #[serde(default)]
    pub dry_run: bool,
}

/// A hourly usage entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageHour {
    /// The hour (`2026-12-01T14`, UTC).
    pub hour: String,
    /// Records the source received.
    pub events: u64,
    /// Their approximate bytes.
    pub bytes: u64,
}

/// A pipeline's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Per hour, oldest first.
    pub hours: Vec<UsageHour>,
}

/// The body of a request, refused past the size limit (413) with the usual error shape.
pub(crate) fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than the limit (--body-limit, 1 MiB by default)",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body is not UTF-8 text",
        )
    })
}

pub(crate) fn content_type(headers: &HeaderMap) -> ContentType {
    ContentType::from_mime(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json"),
    )
}

fn accepted(status: PipelineStatus) -> Response {
    (StatusCode::ACCEPTED, Json(status)).into_response()
}

/// Lists the pipelines.
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines",
    responses((status = 200, description = "Every pipeline", body = PipelineList)))]
pub(crate) async fn list(State(api): State<Api>) -> Json<PipelineList> {
    Json(PipelineList {
        pipelines: api.sup.list(),
    })
}

/// Creates a pipeline and starts it.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", params(CreateParams),
    request_body(description = "One pipeline, as JSON or YAML",
        content((PipelineBody = "application/json"), (String = "application/yaml"))),
    responses(
        (status = 201, description = "Created; it starts", body = PipelineStatus),
        (status = 200, description = "With dry_run: it validates", body = Validated),
        (status = 400, description = "The definition is invalid (located problems)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "A pipeline of that name exists", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    params: Result<Query<CreateParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_token(&api, &headers)?;
    let Query(params) = params
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let text = body_text(body)?;
    let ct = content_type(&headers);
    if params.dry_run {
        let (name, warnings) = api.sup.validate(&text, ct)?;
        return Ok(Json(Validated {
            name,
            warnings: warnings.iter().map(LocatedProblem::from).collect(),
        })
        .into_response());
    }
    let status = api.sup.create(&text, ct)?;
    Ok((StatusCode::CREATED, Json(status)).into_response())
}

/// A pipeline's definition and status.
#[utoipa::path(get, path = "/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineView),
        (status = 404, description = "No such pipeline", body = ErrorBody)))]
pub(crate) async fn get(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<PipelineView>, ApiError> {
    let (definition, origin, file, status) = api.sup.get(&name)?;
    Ok(Json(PipelineView {
        name,
        origin,
        file,
        definition,
        status,
    }))
}

/// Replaces (or creates) a pipeline: the new definition is built and validated first; the old
/// generation drains and commits before the new one starts from its offsets.
#[utoipa::path(put, path = "/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"),
        ("If-Match" = Option<u64>, Header, description = "The generation the change is based on")),
    request_body(description = "One pipeline, as JSON or YAML",
        content((PipelineBody = "application/json"), (String = "application/yaml"))),
    responses(
        (status = 202, description = "Accepted; the status shows the change", body = PipelineStatus),
        (status = 400, description = "The definition is invalid (located problems)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "The pipeline is defined in a file", body = ErrorBody),
        (status = 412, description = "If-Match names another generation", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn replace(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_token(&api, &headers)?;
    let text = body_text(body)?;
    let if_match = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => {
            let g = v
                .to_str()
                .ok()
                .map(|s| s.trim().trim_matches('"'))
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|g| u64::try_from(g).ok());
            match g {
                Some(g) => Some(g),
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_header",
                        "If-Match must be a pipeline generation (a number)",
                    ));
                }
            }
        }
    };
    let status = api
        .sup
        .replace(&name, &text, content_type(&headers), if_match)?;
    Ok(accepted(status))
}

/// Drains, commits and removes a pipeline.
#[utoipa::path(delete, path = "/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline is defined in a file", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_token(&api, &headers)?;
    api.sup.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A pipeline's status.
#[utoipa::path(get, path = "/v1/pipelines/{name}/status", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The status", body = PipelineStatus),
        (status = 404, description = "No such pipeline", body = ErrorBody)))]
pub(crate) async fn status(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<PipelineStatus>, ApiError> {
    Ok(Json(api.sup.status(&name)?))
}

async fn act(api: Api, name: String, headers: HeaderMap, a: Action) -> Result<Response, ApiError> {
    require_token(&api, &headers)?;
    Ok(accepted(api.sup.command(&name, a)?))
}

macro_rules! action {
    ($fn:ident, $path:literal, $action:expr, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(post, path = $path, tag = "pipelines",
            params(("name" = String, Path, description = "Pipeline name")),
            responses(
                (status = 202, description = "Accepted; the status shows the progress", body = PipelineStatus),
                (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
                (status = 404, description = "No such pipeline", body = ErrorBody)),
            security(("bearer" = [])))]
        pub(crate) async fn $fn(
            State(api): State<Api>,
            Path(name): Path<String>,
            headers: HeaderMap,
        ) -> Result<Response, ApiError> {
            act(api, name, headers, $action).await
        }
    };
}

action!(
    pause,
    "/v1/pipelines/{name}/pause",
    Action::Pause,
    "Stops reading; the consumer stays in its group."
);
action!(
    resume,
    "/v1/pipelines/{name}/resume",
    Action::Resume,
    "Reads again."
);
action!(
    stop,
    "/v1/pipelines/{name}/stop",
    Action::Stop,
    "Drains to acks, commits and stops."
);
action!(
    start,
    "/v1/pipelines/{name}/start",
    Action::Start,
    "Starts a stopped or failed pipeline."
);
action!(
    restart,
    "/v1/pipelines/{name}/restart",
    Action::Restart,
    "Drains, commits and starts again."
);

/// The pipeline's consumer-group offsets: committed, log end and lag per partition.
#[utoipa::path(get, path = "/v1/pipelines/{name}/offsets", tag = "offsets",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "Per partition", body = Offsets),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline does not read from Kafka", body = ErrorBody),
        (status = 502, description = "The brokers could not be asked", body = ErrorBody)))]
pub(crate) async fn offsets(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Offsets>, ApiError> {
    Ok(Json(Offsets {
        offsets: api.sup.offsets(&name).await?,
    }))
}

/// Sets partitions to offsets; only while the pipeline is stopped.
#[utoipa::path(patch, path = "/v1/pipelines/{name}/offsets", tag = "offsets",
    params(("name" = String, Path, description = "Pipeline name")),
    request_body = OffsetsPatch,
    responses(
        (status = 200, description = "The offsets now", body = Offsets),
        (status = 400, description = "The body is not a list of offsets", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline is not stopped, or does not read from Kafka", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 502, description = "The brokers refused", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn set_offsets(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Offsets>, ApiError> {
    require_token(&api, &headers)?;
    let text = body_text(body)?;
    let patch: OffsetsPatch = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {{\"offsets\": [{{\"topic\", \"partition\", \"offset\"}}]}}: {e}"),
        )
    })?;
    Ok(Json(Offsets {
        offsets: api.sup.set_offsets(&name, patch.offsets).await?,
    }))
}

/// Moves the consumer group back to where its `start_from` says; only while stopped.
#[utoipa::path(delete, path = "/v1/pipelines/{name}/offsets", tag = "offsets",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "The offsets now", body = Offsets),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline is not stopped, or does not read from Kafka", body = ErrorBody),
        (status = 502, description = "The brokers refused", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn reset_offsets(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Offsets>, ApiError> {
    require_token(&api, &headers)?;
    Ok(Json(Offsets {
        offsets: api.sup.reset_offsets(&name).await?,
    }))
}

/// Records and bytes a pipeline's source received, per hour.
#[utoipa::path(get, path = "/v1/pipelines/{name}/usage", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses(
        (status = 200, description = "Per hour", body = Usage),
        (status = 404, description = "No such pipeline", body = ErrorBody)))]
pub(crate) async fn usage(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Usage>, ApiError> {
    api.sup.account_usage();
    Ok(Json(Usage {
        hours: api
            .sup
            .usage(&name)?
            .into_iter()
            .map(|(hour, events, bytes)| UsageHour {
                hour,
                events,
                bytes,
            })
            .collect(),
    }))
}
