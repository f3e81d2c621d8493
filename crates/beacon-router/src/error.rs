//! The router's one error enum for its own routes (not inference failures, which use
//! the `/inference` shape): each maps to an HTTP status and an `error_code`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::UnknownRegion(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::AdminDisabled => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::IdempotencyConflict => StatusCode::CONFLICT,
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.to_string(), "error_code": self.code()});
        (self.status(), Json(body)).into_response()
    }
}
