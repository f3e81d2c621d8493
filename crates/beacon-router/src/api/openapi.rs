//! The router's OpenAPI 3.1 document: every public route's `#[utoipa::path]`, the three
//! answer shapes (`/inference`, OpenAI's error, the router's own `ErrorBody`), the
//! bearer tokens, and `GET /openapi.json` serving it. The committed copy is
//! docs/openapi/router.json (tests/openapi.rs keeps it equal to what is served).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Beacon router",
        description = "Routes inference to healthy providers of one region, with evidence-based health (docs/router.md). Besides the answers listed per operation, any route may get a transport error, in ErrorBody: 405 METHOD_NOT_ALLOWED, 408 REQUEST_TIMEOUT, 414 URI_TOO_LONG, 431 HEADERS_TOO_LARGE, 503 TOO_MANY_CONNECTIONS.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::inference::inference,
        super::openai::chat_completions,
        super::openai::models,
        super::openai::model,
        super::status::providers,
        super::status::health,
        super::status::livez,
        super::status::readyz,
        super::status::metrics,
        super::admin::probe,
        super::admin::drain,
        super::admin::enable,
        super::admin::config,
        serve,
    ),
    components(schemas(ErrorBody, Json, OpenAiError, OpenAiErrorDetail)),
    modifiers(&Tokens),
    tags(
        (name = "inference", description = "Inference in one region (spends money: bearer token)"),
        (name = "status", description = "Providers, health, readiness, metrics and this document"),
        (name = "admin", description = "Operator routes behind the admin token"),
    ),
)]
pub struct RouterApi;

/// Any JSON value: the shape the handler builds and router.md describes.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct Json(#[allow(dead_code)] Value);

/// The error of `POST /v1/chat/completions`, in OpenAI's shape (SDKs read it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiError {
    error: OpenAiErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiErrorDetail {
    message: String,
    /// `authentication_error` (401), `not_found_error` (404), `rate_limit_error` (429),
    /// `invalid_request_error` (other 4xx) or `api_error` (5xx).
    #[schema(rename = "type")]
    kind: String,
    /// The Beacon error code (`INVALID_REQUEST`, `NO_PROVIDER_FOR_MODEL`, ...).
    code: String,
    /// Always null (OpenAI's field; the router names no parameter).
    param: Option<String>,
}

/// The bearer tokens: the inference tokens (`[auth]`) and the admin token.
struct Tokens;

impl Modify for Tokens {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "inference_token",
                "One of [auth]'s inference tokens (ROUTER_INFERENCE_TOKEN); absent only with allow_unauthenticated",
            ),
            ("admin_token", "The admin token (admin_token_env)"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

/// The document as served (built once: it never changes while the process runs).
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    RouterApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "status",
    operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Json)),
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
