//! Service routes: the question catalogue, `/api/v1/health`, `/livez`, `/readyz`,
//! `/metrics`, and `/api/v1/diagnostics` (admin token): what an operator needs to see
//! why jobs fail.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use beacon_core::status::ExecutionStatus;
use beacon_store::ExecutionFilter;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/api/v1/questions",
    tag = "service",
    operation_id = "questions",
    summary = "The question catalogue by category",
    responses(
        (status = 200, description = "`{categories}`", body = super::openapi::Json),
    ),
)]
pub async fn questions(State(app): State<Arc<AppState>>) -> Json<Value> {
    let mut categories = serde_json::Map::new();
    for (category, list) in app.catalogue.by_category() {
        let items: Vec<Value> = list
            .iter()
            .map(|q| json!({"question_id": q.id, "question": q.text, "category": q.category, "sensitive": q.sensitive, "markers": q.markers}))
            .collect();
        categories.insert(category.to_string(), Value::Array(items));
    }
    Json(json!({"categories": categories}))
}

/// What the health routes found.
struct Checks {
    services: Value,
    /// The database answers and the last write went through.
    db_ok: bool,
    /// The router answers and the breaker lets calls through.
    router_ok: bool,
}

/// Each dependency's status: `healthy`, or `down` / `failing` with the reason. A
/// database that answers reads but refuses writes (a full disk) is `failing`; a router
/// that answers while the breaker still holds calls back is `degraded`; one that
/// refused our token on the last inference is `unauthorized`.
async fn checks(app: &AppState) -> Checks {
    // Bounded: during an outage the pool would wait its whole acquire timeout.
    let db = match tokio::time::timeout(Duration::from_secs(2), app.ctx.store.ping()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the database did not answer within 2 s".to_string()),
    };
    let writes = app.ctx.writes.trouble();
    let router = app.ctx.router.health(Duration::from_secs(2)).await;
    let breaker = app.ctx.router.breaker.state();
    let db_status = match (&db, &writes) {
        (Err(_), _) => "down",
        (Ok(()), Some(_)) => "failing",
        (Ok(()), None) => "healthy",
    };
    // Learnt from the last inference: the router's public routes answer anyway.
    let refused = app.ctx.router.token_refused();
    let router_status = match (&router, breaker) {
        (Err(_), _) => "down",
        (Ok(_), _) if refused => "unauthorized",
        (Ok(_), crate::router::BreakerState::Open) => "degraded",
        (Ok(_), _) => "healthy",
    };
    let services = json!([
        {"name": "database", "status": db_status, "backend": app.ctx.store.backend(),
         "error": db.err(), "writes_failing": writes},
        {"name": "router", "status": router_status,
         "router_status": router.as_ref().ok().and_then(|v| v.get("status").cloned()),
         "error": router.err().map(|f| f.message).or_else(|| refused.then(|| {
             "the router refuses this runner's inference token (ROUTER_TOKEN): ROUTER_UNAUTHORIZED".to_string()
         })),
         "breaker": breaker},
        {"name": "scheduler", "status": "healthy", "jobs_running": app.ctx.jobs.len()},
    ]);
    Checks {
        services,
        db_ok: db_status == "healthy",
        router_ok: router_status == "healthy",
    }
}

/// `GET /api/v1/health`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `healthy`, `degraded` (the router is not) or `unhealthy` (the database is not).
    pub status: &'static str,
    /// `[{name, status, ...}]` for the database, the router and the scheduler.
    #[schema(value_type = Vec<Object>)]
    pub services: Value,
    pub version: &'static str,
    pub instance: String,
    pub uptime_seconds: u64,
    /// The base64 Ed25519 key the runner's receipts are signed with.
    pub receipt_public_key: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    operation_id = "health",
    summary = "The runner and its dependencies",
    responses(
        (status = 200, description = "The runner and its dependencies", body = Health),
    ),
)]
pub async fn health(State(app): State<Arc<AppState>>) -> Json<Health> {
    let c = checks(&app).await;
    let status = match (c.db_ok, c.router_ok) {
        (true, true) => "healthy",
        (true, false) => "degraded",
        _ => "unhealthy",
    };
    // Clients verifying receipts offline (`beacon verify`) compare against this key.
    let receipt_key = beacon_core::signing::encode_public_key(&app.ctx.signing_key.verifying_key());
    Json(Health {
        status,
        services: c.services,
        version: env!("CARGO_PKG_VERSION"),
        instance: app.config.instance_id.clone(),
        uptime_seconds: app.started.elapsed().as_secs(),
        receipt_public_key: receipt_key,
    })
}

#[utoipa::path(
    get,
    path = "/livez",
    tag = "service",
    operation_id = "livez",
    summary = "The process answers",
    responses(
        (status = 200, description = "`{status: ok}`", body = super::openapi::Json),
    ),
)]
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and the router is reachable (the config was valid,
/// or the process would not be running).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "readyz",
    summary = "Ready: the database and the router answer",
    responses(
        (status = 200, description = "`{ready: true, services}`", body = super::openapi::Json),
        (status = 503, description = "`{ready: false, services}`", body = super::openapi::Json),
    ),
)]
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let c = checks(&app).await;
    let ready = c.db_ok && c.router_ok;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready, "services": c.services}))).into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    summary = "Prometheus metrics (docs/metrics.md)",
    responses(
        (status = 200, description = "The text exposition format", body = String, content_type = "text/plain"),
    ),
)]
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let m = &app.ctx.metrics;
    m.set_gauge(
        "beacon_runner_jobs_running",
        Vec::new(),
        app.ctx.jobs.len() as f64,
    );
    let breaker = app.ctx.router.breaker.state();
    for (s, name) in [
        (crate::router::BreakerState::Closed, "closed"),
        (crate::router::BreakerState::Open, "open"),
        (crate::router::BreakerState::HalfOpen, "half_open"),
    ] {
        m.set_gauge(
            "beacon_runner_breaker_state",
            vec![("state", name.to_string())],
            f64::from(u8::from(breaker == s)),
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        m.render(),
    )
        .into_response()
}

fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = app.config.admin_token.as_deref() else {
        return Err(ApiError::NotFound(
            "diagnostics are disabled: set RUNNER_ADMIN_TOKEN".into(),
        ));
    };
    let same = beacon_service::bearer_matches(headers, token);
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/diagnostics",
    tag = "service",
    operation_id = "diagnostics",
    summary = "What an operator needs to see why jobs fail",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Configuration summary, services, leases, recent failures by code", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: missing or wrong admin token", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: diagnostics are disabled (no RUNNER_ADMIN_TOKEN)", body = crate::error::ErrorBody),
    ),
)]
pub async fn diagnostics(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &headers)?;
    let services = checks(&app).await.services;
    let providers = app.ctx.router.providers(Duration::from_secs(3)).await;
    let leases = app.ctx.store.leases().await?;
    // Recent failures grouped by code, one example each.
    let mut by_code: Vec<(String, u64, Value)> = Vec::new();
    for status in [ExecutionStatus::Failed, ExecutionStatus::Timeout] {
        let page = app
            .ctx
            .store
            .list_executions(&ExecutionFilter {
                status: Some(status),
                limit: 500,
                newest_first: true,
                ..Default::default()
            })
            .await?;
        for e in page.items {
            let code = e
                .failure
                .as_ref()
                .map_or("UNKNOWN".to_string(), |f| f.code.to_string());
            match by_code.iter_mut().find(|(c, _, _)| *c == code) {
                Some((_, n, _)) => *n += 1,
                None => by_code.push((code, 1, json!({"execution_id": e.id, "job_id": e.job_id, "region": e.region, "model_id": e.model_id, "failure": e.failure}))),
            }
        }
    }
    by_code.sort_by_key(|(_, n, _)| std::cmp::Reverse(*n));
    Ok(Json(json!({
        "config": app.config.summary(),
        "services": services,
        "breaker": app.ctx.router.breaker.state(),
        "router_providers": match providers {
            Ok(p) => json!(p.providers),
            Err(f) => json!({"error": f.message}),
        },
        "jobs_running_here": app.ctx.jobs.ids(),
        "leases": leases,
        "recent_failures_by_code": by_code.into_iter().map(|(code, count, example)| json!({"code": code, "count": count, "example": example})).collect::<Vec<_>>(),
    })))
}
