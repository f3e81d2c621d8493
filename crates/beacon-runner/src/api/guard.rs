//! Request guards that run before any handler: a URL holding a control character is
//! refused (no id or filter can contain one, and PostgreSQL cannot even compare U+0000);
//! a state-changing request must say `Content-Type: application/json`; and the control
//! routes (cancel, retry, execute) need the control token when the operator set one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::ApiError;

/// 400 `INVALID_CHARACTER` for a path or query that decodes to a C0 control character
/// or DEL. Checked on the decoded bytes: `%00` is how such a byte arrives.
pub async fn refuse_control_characters(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let holds_control =
        |text: &str| percent_encoding::percent_decode_str(text).any(|b| b < 0x20 || b == 0x7f);
    if holds_control(uri.path()) || uri.query().is_some_and(holds_control) {
        return ApiError::bad(
            "INVALID_CHARACTER",
            "the URL contains a control character (such as %00); no id or parameter holds one",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether a `Content-Type` value names JSON (`application/json`, parameters allowed).
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// 415 `UNSUPPORTED_MEDIA_TYPE` for a POST (every state-changing route of the runner is a
/// POST) that is not declared JSON, body or no body. A browser sends `text/plain`, form
/// encodings or no type at all cross-origin without asking first (a CORS "simple"
/// request, which can only be GET, HEAD or POST); CORS would only hide the answer after
/// the job was cancelled. `application/json` makes a browser ask the preflight, which
/// only the configured origins pass. The portal sends it on every call. It runs only on
/// a matched route and method (`route_layer`): other methods get 405, unknown paths 404.
pub async fn require_json(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json(ct) {
            return ApiError::UnsupportedMediaType.into_response();
        }
    }
    next.run(req).await
}

/// 401 `UNAUTHORIZED` on a control route (cancel, retries, execute) without
/// `Authorization: Bearer <RUNNER_CONTROL_TOKEN>` (the admin token also passes), when
/// the operator set a control token. Without one the routes stay open, as the portal,
/// which sends no credentials, expects.
pub async fn require_control_token(
    State(app): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = app.config.control_token.as_deref() {
        let headers = req.headers();
        let admin = app
            .config
            .admin_token
            .as_deref()
            .is_some_and(|t| beacon_service::bearer_matches(headers, t));
        if !admin && !beacon_service::bearer_matches(headers, token) {
            return ApiError::ControlTokenRequired.into_response();
        }
    }
    next.run(req).await
}
