//! Admin routes behind a bearer token (off when no token is configured): probe a
//! provider now, drain or enable it, and show the redacted configuration.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::prober::{ProbeReport, probe_once};
use crate::registry::Provider;

fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = app.config.admin_token.as_deref() else {
        return Err(ApiError::AdminDisabled);
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare in constant time so the token cannot be guessed byte by byte.
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn provider<'a>(app: &'a AppState, name: &str) -> Result<&'a Provider, ApiError> {
    app.router
        .registry
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("no provider named {name:?}")))
}

#[utoipa::path(
    post,
    path = "/admin/providers/{name}/probe",
    tag = "admin",
    operation_id = "probe_provider",
    summary = "Probe a provider now (a real inference)",
    params(
        ("name" = String, Path, description = "The provider's configured name"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "What the probe found", body = crate::prober::ProbeReport),
        (status = 401, description = "UNAUTHORIZED: missing or wrong admin token", body = crate::error::ErrorBody),
        (status = 404, description = "ADMIN_DISABLED (no admin token configured) or NOT_FOUND (no such provider)", body = crate::error::ErrorBody),
    ),
)]
pub async fn probe(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<ProbeReport>, ApiError> {
    authorize(&app, &headers)?;
    let p = provider(&app, &name)?;
    Ok(Json(probe_once(p, &app.config.health, &app.metrics).await))
}

async fn set_draining(
    app: &AppState,
    headers: &HeaderMap,
    name: &str,
    draining: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(app, headers)?;
    let p = provider(app, name)?;
    p.with_health(|h| h.set_draining(draining));
    Ok(Json(
        json!({"provider": name, "state": p.with_health(|h| h.state().as_str())}),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/providers/{name}/drain",
    tag = "admin",
    operation_id = "drain_provider",
    summary = "Take a provider out of rotation",
    params(
        ("name" = String, Path, description = "The provider's configured name"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{provider, state}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: missing or wrong admin token", body = crate::error::ErrorBody),
        (status = 404, description = "ADMIN_DISABLED (no admin token configured) or NOT_FOUND (no such provider)", body = crate::error::ErrorBody),
    ),
)]
pub async fn drain(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&app, &headers, &name, true).await
}

#[utoipa::path(
    post,
    path = "/admin/providers/{name}/enable",
    tag = "admin",
    operation_id = "enable_provider",
    summary = "Put a drained provider back",
    params(
        ("name" = String, Path, description = "The provider's configured name"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{provider, state}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: missing or wrong admin token", body = crate::error::ErrorBody),
        (status = 404, description = "ADMIN_DISABLED (no admin token configured) or NOT_FOUND (no such provider)", body = crate::error::ErrorBody),
    ),
)]
pub async fn enable(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&app, &headers, &name, false).await
}

#[utoipa::path(
    get,
    path = "/admin/config",
    tag = "admin",
    operation_id = "config",
    summary = "The configuration, without secrets",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{summary}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: missing or wrong admin token", body = crate::error::ErrorBody),
        (status = 404, description = "ADMIN_DISABLED: no admin token configured", body = crate::error::ErrorBody),
    ),
)]
pub async fn config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &headers)?;
    Ok(Json(json!({"summary": app.config.summary()})))
}
