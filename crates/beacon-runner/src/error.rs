//! The runner's one error enum: every variant maps to an HTTP status and an
//! `error_code`, and renders as `{error, error_code, details, request_id}` (a 404's
//! text starts with `404:`, which the portal matches).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use beacon_core::spec::SpecError;
use serde::Serialize;
use serde_json::{Value, json};

/// The body of every error answer of the runner (`ErrorBody` in docs/openapi/runner.json).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person (a 404's text starts with `404:`).
    pub error: String,
    /// A stable code to branch on, e.g. `INVALID_QUERY`, `NOT_FOUND`, `RATE_LIMITED`.
    pub error_code: String,
    /// More about the error: `{"field": ...}` for a job spec rule, otherwise `null`
    /// unless the code says otherwise.
    pub details: Value,
    /// Names this answer in the runner's log (internal errors are logged under it).
    pub request_id: String,
    /// Seconds after which a retry may succeed (also `Retry-After`), on a 429 or 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A job spec rule (code and status from beacon-core).
    #[error("{0}")]
    Spec(SpecError),
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    Forbidden(String),
    /// A WebSocket handshake from a page whose origin is not allowed.
    #[error("origin {0} is not allowed to open the event socket; add it to CORS_ORIGINS")]
    OriginNotAllowed(String),
    #[error("404: {0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("too many submissions from this address; try again in {0} s")]
    RateLimited(u64),
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error(
        "this runner requires Authorization: Bearer <control token> for cancel, retry and execute"
    )]
    ControlTokenRequired,
    #[error("{0}")]
    RouterUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// An error of the transport (beacon_service::transport): 405, 408, 413, 414, 431,
    /// path and query rejections, too many connections.
    #[error("{}", .0.message)]
    Transport(beacon_service::TransportError),
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Spec(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) | ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized | ApiError::ControlTokenRequired => StatusCode::UNAUTHORIZED,
            ApiError::RouterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Transport(e) => e.status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Spec(e) => e.error_code(),
            ApiError::BadRequest { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Forbidden(_) => "UNTRUSTED_KEY",
            ApiError::OriginNotAllowed(_) => "ORIGIN_NOT_ALLOWED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::RateLimited(_) => "RATE_LIMITED",
            ApiError::Unauthorized | ApiError::ControlTokenRequired => "UNAUTHORIZED",
            ApiError::RouterUnavailable(_) => "ROUTER_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
            ApiError::Transport(e) => e.code,
        }
    }

    /// Seconds after which a retry may succeed (`Retry-After` and `retry_after`).
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited(s) => Some(*s),
            ApiError::Transport(e) => e.retry_after,
            _ => None,
        }
    }

    /// Renders a transport error in this shape (the serve loop's `Render`).
    pub fn render_transport(e: beacon_service::TransportError) -> Response {
        ApiError::Transport(e).into_response()
    }

    fn details(&self) -> Value {
        match self {
            ApiError::Spec(e) => json!({"field": e.field}),
            ApiError::BadRequest { details, .. } => details.clone(),
            _ => Value::Null,
        }
    }
}

impl From<beacon_store::StoreError> for ApiError {
    fn from(e: beacon_store::StoreError) -> Self {
        if e.is_unstorable_text() {
            tracing::warn!(error = %e, "a request value the database cannot store");
            return ApiError::bad(
                "INVALID_CHARACTER",
                "a value in the request contains a character that cannot be stored (U+0000)",
            );
        }
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        let request_id = hex::encode(id);
        // An internal error's text (a database message, a path) is for the operator's
        // log, never for the client: the body names the request id to look it up by.
        let error = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(request_id = %request_id, error = %detail, "internal error");
                format!(
                    "internal error; the runner's log has the details under request_id {request_id}"
                )
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error,
            error_code: self.code().to_string(),
            details: self.details(),
            request_id,
            retry_after: self.retry_after(),
        };
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        beacon_service::transport::error_response(self.status(), body, self.retry_after())
    }
}
