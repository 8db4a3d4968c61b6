//! Every 4xx and 5xx answer has one JSON shape: `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use weir_core::config::ConfigError;
use weir_runtime::supervisor::SupervisorError;

/// A problem placed in a submitted document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocatedProblem {
    /// Line in the submitted document, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
    /// The YAML path (`sinks[0].url`), empty at the top.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl From<&ConfigError> for LocatedProblem {
    fn from(e: &ConfigError) -> Self {
        LocatedProblem {
            line: e.location.line,
            column: e.location.column,
            path: e.path.clone(),
            message: e.message.clone(),
        }
    }
}

/// The error's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `not_found`, `invalid_definition`, `unauthorized`, ….
    pub code: &'static str,
    /// What happened and what to do, for people.
    pub message: String,
    /// Located problems of a definition; otherwise empty.
    pub details: Vec<LocatedProblem>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// An error with no located details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code,
                    // Whatever an error quotes, no URL credential leaves the process.
                    message: weir_core::redact::urls(&message.into()).into_owned(),
                    details: Vec::new(),
                },
            },
        }
    }

    /// A definition that does not load or build.
    pub fn invalid(errors: &[ConfigError]) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_definition",
            match errors.len() {
                1 => format!("the definition has a problem: {}", errors[0].message),
                n => format!("the definition has {n} problems"),
            },
        );
        e.body.error.details = errors.iter().map(LocatedProblem::from).collect();
        e
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        use SupervisorError as S;
        let message = e.to_string();
        match e {
            S::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            S::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", message),
            S::FromFile { .. } => ApiError::new(StatusCode::CONFLICT, "defined_in_file", message),
            S::StaleGeneration { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "stale_generation", message)
            }
            S::Invalid(errors) => ApiError::invalid(&errors.0),
            S::NameMismatch { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "name_mismatch", message)
            }
            S::WrongState(_) => ApiError::new(StatusCode::CONFLICT, "wrong_state", message),
            S::NoOffsets(_) => ApiError::new(StatusCode::CONFLICT, "no_offsets", message),
            S::Kafka(_) => ApiError::new(StatusCode::BAD_GATEWAY, "kafka", message),
            S::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", message),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}
