//! Read-only routes: `/providers` (every provider with the evidence behind its state),
//! a truthful `/health`, `/livez`, `/readyz` and `/metrics`. No endpoint URL, token or
//! environment variable appears in any of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use beacon_core::Region;
use beacon_core::wire::{ProviderState, ProvidersResponse};
use serde_json::json;
use tokio::time::Instant;

use super::AppState;
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/providers",
    tag = "status",
    operation_id = "providers",
    summary = "Every provider with the evidence behind its state (no URLs)",
    params(
        ("region" = Option<String>, Query, description = "Only this region (any alias)"),
    ),
    responses(
        (status = 200, description = "The providers", body = beacon_core::wire::ProvidersResponse),
        (status = 400, description = "UNKNOWN_REGION", body = crate::error::ErrorBody),
    ),
)]
pub async fn providers(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ProvidersResponse>, ApiError> {
    let region = match q.get("region").filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(Region::parse(r).map_err(|e| ApiError::UnknownRegion(e.to_string()))?),
    };
    let providers = app
        .router
        .registry
        .providers
        .iter()
        .filter(|p| region.as_ref().is_none_or(|r| &p.cfg.region == r))
        .map(|p| p.entry(&app.config.health))
        .collect();
    Ok(Json(ProvidersResponse { providers }))
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "status",
    operation_id = "health",
    summary = "Healthy regions: healthy means proven by a real inference",
    responses(
        (status = 200, description = "`{status, providers_total, providers_healthy, regions, ...}`", body = super::openapi::Json),
    ),
)]
pub async fn health(State(app): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let regions = app.config.regions();
    let providers = &app.router.registry.providers;
    let healthy: Vec<&crate::registry::Provider> = providers
        .iter()
        .filter(|p| p.with_health(|h| h.state()) == ProviderState::Healthy)
        .collect();
    let healthy_regions: Vec<&str> = regions
        .iter()
        .filter(|r| healthy.iter().any(|p| &&p.cfg.region == r))
        .map(Region::as_str)
        .collect();
    // Healthy means proven: unknown providers do not count.
    let status = if healthy_regions.len() == regions.len() {
        "healthy"
    } else if healthy_regions.is_empty() {
        "unhealthy"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "version": env!("CARGO_PKG_VERSION"),
        "providers_total": providers.len(),
        "providers_healthy": healthy.len(),
        "regions": healthy_regions,
        "regions_configured": regions,
    }))
}

#[utoipa::path(
    get,
    path = "/livez",
    tag = "status",
    operation_id = "livez",
    summary = "The process answers",
    responses(
        (status = 200, description = "`{status: ok}`", body = super::openapi::Json),
    ),
)]
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when at least one provider is routable (unknown counts: no evidence against
/// it). The first probe round is reported, not waited for: a GPU cold start can take
/// minutes, and the router must be ready within half a second (quality-bar.md).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "status",
    operation_id = "readyz",
    summary = "Ready: at least one provider is routable",
    responses(
        (status = 200, description = "`{ready: true, ...}`", body = super::openapi::Json),
        (status = 503, description = "`{ready: false, unroutable}`", body = super::openapi::Json),
    ),
)]
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let now = Instant::now();
    let providers = &app.router.registry.providers;
    let mut reasons = Vec::new();
    let mut routable = 0;
    for p in providers {
        match p.with_health(|h| h.refusal(now)) {
            None => routable += 1,
            Some(why) => reasons.push(json!({"provider": p.cfg.name, "reason": why})),
        }
    }
    let probed = app.first_round.load(Ordering::Relaxed);
    let body = json!({
        "ready": routable > 0,
        "routable_providers": routable,
        "providers_total": providers.len(),
        "first_probe_round_complete": probed >= providers.len(),
        "providers_probed": probed,
        "unroutable": reasons,
    });
    let status = if routable > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "status",
    operation_id = "metrics",
    summary = "Prometheus metrics (docs/metrics.md)",
    responses(
        (status = 200, description = "The text exposition format", body = String, content_type = "text/plain"),
    ),
)]
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    for p in &app.router.registry.providers {
        let state = p.with_health(|h| h.state());
        for s in [
            ProviderState::Unknown,
            ProviderState::Healthy,
            ProviderState::Unhealthy,
            ProviderState::Draining,
        ] {
            let labels = vec![
                ("provider", p.cfg.name.clone()),
                ("state", s.as_str().to_string()),
            ];
            app.metrics.gauge(
                "beacon_router_provider_state",
                labels,
                f64::from(u8::from(s == state)),
            );
        }
        app.metrics.gauge(
            "beacon_router_in_flight",
            vec![("provider", p.cfg.name.clone())],
            f64::from(p.in_flight()),
        );
    }
    // What the Idempotency-Key cache holds ([idempotency] max_bytes bounds the bytes).
    let cache = &app.idempotency;
    app.metrics.gauge(
        "beacon_router_idempotency_cache_bytes",
        Vec::new(),
        cache.weighted_size().await as f64,
    );
    app.metrics.gauge(
        "beacon_router_idempotency_cache_entries",
        Vec::new(),
        cache.entry_count().await as f64,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
        .into_response()
}
