//! `POST /inference`, the runner's call (the OpenAI-compatible front door is in
//! `openai.rs`). If the caller disconnects, axum drops this future and with it the
//! upstream request: the provider sees the connection close.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use beacon_core::wire::{InferenceRequest, InferenceResponse};
use beacon_core::{ErrorCode, Failure, Stage};
use tokio::time::Instant;
use tracing::Instrument;

use super::AppState;
use super::auth;
use crate::error::ApiError;
use crate::idempotency::{Caller, Lookup};
use crate::routing::Routed;
use crate::spans;

/// Longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 200;

/// `error_code` of a client body over `[limits] max_request_bytes` (the runner's
/// name for the same refusal).
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";

/// Why a client body was not read: too large (413) or broken mid-way (400).
pub(super) fn body_refusal(app: &AppState, e: &BytesRejection) -> (u16, String, &'static str) {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = app.config.limits.max_request_bytes;
        (
            413,
            format!("request body larger than {limit} bytes (max_request_bytes)"),
            PAYLOAD_TOO_LARGE,
        )
    } else if beacon_service::transport::is_body_timeout(e) {
        // The body stopped arriving for `[server] body_read_timeout`.
        (
            408,
            "request body not received within body_read_timeout".to_string(),
            "REQUEST_TIMEOUT",
        )
    } else {
        (
            400,
            format!("cannot read the request body: {}", e.body_text()),
            "INVALID_REQUEST",
        )
    }
}

/// The peer address, when the server was built with connect info (it is in `app.rs`).
pub(super) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub(super) fn caller(app: &AppState, headers: &HeaderMap, peer: Peer) -> Option<Caller> {
    auth::identify(&app.config.inference_auth, headers, peer.map(|p| (p.0).0))
}

/// `WWW-Authenticate: Bearer` on a 401 (RFC 6750).
pub(super) fn challenge(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// `POST /inference`, inside its `inference` span (continued from the caller's
/// `traceparent`), which records the answer's status and failure.
#[utoipa::path(
    post,
    path = "/inference",
    tag = "inference",
    operation_id = "inference",
    summary = "One inference in one region, routed to a healthy provider",
    request_body(content = beacon_core::wire::InferenceRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "At most 200 characters: a retry with the same key and body gets the first answer (Idempotent-Replayed: true)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context; its trace id becomes metadata.trace_id"),
    ),
    security(("inference_token" = [])),
    responses(
        (status = 200, description = "The answer, with provider_used and metadata.region (success: true)", body = beacon_core::wire::InferenceResponse),
        (status = 400, description = "INVALID_REQUEST or UNKNOWN_REGION: the body or a header is refused", body = beacon_core::wire::InferenceResponse),
        (status = 401, description = "UNAUTHORIZED: no inference token, or a wrong one (WWW-Authenticate: Bearer)", body = beacon_core::wire::InferenceResponse),
        (status = 404, description = "NO_PROVIDER_FOR_MODEL: no provider of the region serves the model", body = beacon_core::wire::InferenceResponse),
        (status = 408, description = "REQUEST_TIMEOUT: the body did not arrive within body_read_timeout", body = beacon_core::wire::InferenceResponse),
        (status = 409, description = "IDEMPOTENCY_KEY_CONFLICT: the key was used for a different request", body = crate::error::ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is larger than max_request_bytes", body = beacon_core::wire::InferenceResponse),
        (status = 502, description = "The provider failed (PROVIDER_HTTP_ERROR, PROVIDER_CONNECT_ERROR, PROVIDER_BAD_RESPONSE, ...): failure says which, where and why", body = beacon_core::wire::InferenceResponse),
        (status = 503, description = "NO_HEALTHY_PROVIDER (candidates lists every provider and why) or OVERLOADED; Retry-After", body = beacon_core::wire::InferenceResponse),
        (status = 504, description = "PROVIDER_TIMEOUT: no answer within the deadline", body = beacon_core::wire::InferenceResponse),
    ),
)]
pub async fn inference(
    State(app): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = spans::inference(&headers, "/inference");
    let resp = infer(&app, peer, &headers, body)
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", resp.status().as_u16());
    resp
}

async fn infer(
    app: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // First: nothing is read, parsed, cached or bought for an unknown caller.
    let Some(caller) = caller(app, headers, peer) else {
        let f = Failure::new(ErrorCode::Unauthorized, Stage::Validation, auth::REFUSED)
            .with_transient(false);
        return challenge(answer(401, InferenceResponse::failed(f), false));
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let (status, message, code) = body_refusal(app, &e);
            let code = ErrorCode::parse(code);
            let f = Failure::new(code, Stage::Validation, message).with_transient(false);
            return answer(status, InferenceResponse::failed(f), false);
        }
    };
    let mut req: InferenceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let f = Failure::new(
                ErrorCode::InvalidRequest,
                Stage::Validation,
                format!("invalid /inference body: {e}"),
            )
            .with_transient(false);
            return answer(400, InferenceResponse::failed(f), false);
        }
    };
    if req.trace_id.is_none() {
        req.trace_id = trace_id(headers);
    }
    let incoming = spans::incoming_traceparent(headers);
    let incoming = incoming.as_deref();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let (routed, replayed) = match key {
        Some(k) if k.len() > MAX_KEY_LEN => {
            // In the /inference shape, like every other refusal of this route.
            let f = Failure::new(
                ErrorCode::InvalidRequest,
                Stage::Validation,
                format!("Idempotency-Key longer than {MAX_KEY_LEN} characters"),
            )
            .with_transient(false);
            return answer(400, InferenceResponse::failed(f), false);
        }
        Some(k) => match app
            .idempotency
            .run(caller, k, &req, || app.router.infer(&req, incoming))
            .await
        {
            Lookup::Answer(r, replayed) => (r, replayed),
            Lookup::Conflict => return ApiError::IdempotencyConflict.into_response(),
        },
        None => (app.router.infer(&req, incoming).await, false),
    };
    if !replayed {
        app.metrics
            .overhead(started.elapsed().saturating_sub(routed.upstream));
    }
    let Routed { status, body, .. } = routed;
    answer(status, body, replayed)
}

/// `Retry-After` in whole seconds (HTTP allows no fractions), rounded up so a client
/// that obeys it is never early.
pub(super) fn retry_after_header(seconds: Option<f64>) -> Option<HeaderValue> {
    let s = seconds.filter(|s| s.is_finite() && *s > 0.0)?;
    Some(HeaderValue::from(s.ceil() as u64))
}

/// The `/inference` answer; recorded on the current (`inference`) span.
fn answer(status: u16, body: InferenceResponse, replayed: bool) -> Response {
    spans::answered(&tracing::Span::current(), status, &body, replayed);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry = retry_after_header(body.failure.as_ref().and_then(|f| f.retry_after));
    let mut resp = (code, Json(body)).into_response();
    if let Some(v) = retry {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`) or `X-Trace-Id`.
pub(super) fn trace_id(headers: &HeaderMap) -> Option<String> {
    let from_parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| tp.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    from_parent.or_else(|| {
        headers
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| id.len() <= 128)
            .map(str::to_string)
    })
}
