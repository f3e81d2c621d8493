//! The router's one error enum for its own routes (not inference failures, which use
//! the `/inference` shape): each maps to an HTTP status and an `error_code`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of the router's own error answers (`ErrorBody` in docs/openapi/router.json);
/// inference failures use the `/inference` shape instead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// A stable code to branch on, e.g. `UNKNOWN_REGION`, `UNAUTHORIZED`, `NOT_FOUND`.
    pub error_code: String,
    /// Seconds after which a retry may succeed (also `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnknownRegion(String),
    #[error("404: {0}")]
    NotFound(String),
    #[error("admin routes are disabled: no admin token is configured")]
    AdminDisabled,
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyConflict,
    /// An error of the transport (beacon_service::transport): 405, 408, 413, 414, 431,
    /// path and query rejections, too many connections.
    #[error("{}", .0.message)]
    Transport(beacon_service::TransportError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::UnknownRegion(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::AdminDisabled => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::IdempotencyConflict => StatusCode::CONFLICT,
            ApiError::Transport(e) => e.status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "INVALID_REQUEST",
            ApiError::UnknownRegion(_) => "UNKNOWN_REGION",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::AdminDisabled => "ADMIN_DISABLED",
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::IdempotencyConflict => "IDEMPOTENCY_KEY_CONFLICT",
            ApiError::Transport(e) => e.code,
        }
    }

    /// Renders a transport error in this shape (the serve loop's `Render`).
    pub fn render_transport(e: beacon_service::TransportError) -> Response {
        ApiError::Transport(e).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::Transport(e) => e.retry_after,
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            error_code: self.code().to_string(),
            retry_after,
        };
        let body = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
        beacon_service::transport::error_response(self.status(), body, retry_after)
    }
}
