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

pub async fn drain(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&app, &headers, &name, true).await
}

pub async fn enable(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&app, &headers, &name, false).await
}

pub async fn config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &headers)?;
    Ok(Json(json!({"summary": app.config.summary()})))
}
