//! The runner's HTTP API (runner.md "HTTP API"): routes, shared state, CORS. Handlers
//! are thin; the work is in `accept`, the scheduler and the store.

mod events;
mod executions;
mod jobs;
mod rate;
pub mod report;
mod status;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use beacon_core::Catalogue;
use beacon_core::spec::Limits;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::router::RouterCatalog;
use crate::scheduler::Ctx;

pub use rate::RateLimiter;

/// Everything handlers share.
pub struct AppState {
    pub config: Config,
    pub ctx: Arc<Ctx>,
    pub catalogue: Catalogue,
    pub limits: Limits,
    pub catalog: RouterCatalog,
    pub rate: RateLimiter,
    pub started: std::time::Instant,
    pub reports: report::ReportCache,
}

pub fn routes(state: Arc<AppState>) -> Router {
    let cors = cors(&state.config.cors_origins);
    // The spec reader checks the size itself (413 with a code); the transport limit
    // only stops absurd bodies from being buffered at all.
    let body_limit = DefaultBodyLimit::max(state.limits.max_body_bytes * 2);
    let api = Router::new()
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry-failed", post(jobs::retry_failed))
        .route("/jobs/{id}/executions", get(executions::for_job))
        .route("/jobs/{id}/executions/all", get(executions::for_job_all))
        .route("/jobs/{id}/events", get(events::stream))
        .route("/jobs/{id}/report", get(report::json))
        .route("/jobs/{id}/report.html", get(report::html))
        .route("/executions", get(executions::newest))
        .route("/executions/{id}/details", get(executions::details))
        .route("/executions/{id}/receipt", get(executions::receipt))
        .route("/questions", get(status::questions))
        .route("/health", get(status::health))
        .route("/diagnostics", get(status::diagnostics));
    Router::new()
        .nest("/api/v1", api)
        // Live updates over WebSocket (ws.rs): `/ws`, the portal's default, and `/api/v1/ws`.
        .merge(ws::routes())
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(body_limit)
        .layer(cors)
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            axum::http::header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
        ])
}
