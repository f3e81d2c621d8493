//! The runner's HTTP API (runner.md "HTTP API"): routes, shared state, CORS. Handlers
//! are thin; the work is in `accept`, the scheduler and the store.

mod cross_region;
mod events;
mod executions;
mod geo;
mod guard;
mod jobs;
pub mod openapi;
mod portal;
mod rate;
pub mod report;
mod retry;
mod router_view;
mod status;
mod transparency;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{MethodRouter, get, post};
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
    /// Cancelled when the server begins its graceful shutdown: long-lived responses
    /// (Server-Sent Events, WebSockets) end on it.
    pub closing: tokio_util::sync::CancellationToken,
    /// This instance's copy of the transparency tree (`crate::transparency`).
    pub transparency: Arc<crate::transparency::TransparencyLog>,
}

pub fn routes(state: Arc<AppState>) -> Router {
    let cors = cors(&state.config.cors_origins);
    // The spec reader checks the size itself (413 with a code); the transport limit
    // only stops absurd bodies from being buffered at all.
    let body_limit = DefaultBodyLimit::max(state.limits.max_body_bytes * 2);
    let api = Router::new()
        .route("/jobs", json_only(post(jobs::submit).get(jobs::list)))
        .route("/jobs/cross-region", json_only(post(cross_region::submit)))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/executions", get(executions::for_job))
        .route("/jobs/{id}/executions/all", get(executions::for_job_all))
        .route("/jobs/{id}/events", get(events::stream))
        .route("/jobs/{id}/report", get(report::json))
        .route("/jobs/{id}/report.html", get(report::html))
        .route(
            "/jobs/{id}/report/answers.jsonl",
            get(report::answers_jsonl),
        )
        .route("/executions", get(executions::newest))
        .route("/executions/{id}/details", get(executions::details))
        .route("/executions/{id}/receipt", get(executions::receipt))
        // The portal's result and retry routes (portal-contract.md 2.2, 2.4).
        .route("/executions/{id}/cross-region", get(portal::cross_region))
        .route(
            "/executions/{id}/cross-region-diff",
            json_only(get(portal::cross_region_diff).post(portal::cross_region_diff_post)),
        )
        .route("/executions/{id}/regions", get(portal::regions))
        .route("/executions/{id}/diff-analysis", get(portal::diff_analysis))
        .route("/diffs", get(portal::diffs))
        .route("/questions", get(status::questions))
        .route("/health", get(status::health))
        .route("/diagnostics", get(status::diagnostics))
        .route("/router/providers", get(router_view::providers));
    // Routes that change a job: the control token guards them when it is set. Also on
    // each method router (as JSON above), so another method is a 405 without a token.
    let guarded = |route| {
        json_only(route).route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_control_token,
        ))
    };
    let control = Router::new()
        .route("/jobs/{id}/cancel", guarded(post(jobs::cancel)))
        .route("/jobs/{id}/retry-failed", guarded(post(jobs::retry_failed)))
        .route(
            "/executions/{id}/retry-question",
            guarded(post(retry::retry_question)),
        )
        .route(
            "/executions/{id}/retry-all-failed",
            guarded(post(retry::retry_all_failed)),
        )
        .route("/jobs/{id}/execute", guarded(post(portal::execute)));
    // Transparency log and geo (api/transparency.rs, api/geo.rs).
    let api = api.merge(control).merge(transparency::routes());
    Router::new()
        .nest("/api/v1", api)
        .route(
            "/api/v2/jobs/{id}/bias-analysis",
            get(portal::bias_analysis),
        )
        // The portal's gateway-less bundleUrl has no /api/v1 (portal-contract 2.3).
        .route(
            "/transparency/bundles/{cid}",
            get(transparency::bundle_at_root),
        )
        // Live updates over WebSocket (ws.rs): `/ws`, the portal's default, and `/api/v1/ws`.
        .merge(ws::routes())
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(body_limit)
        .layer(axum::middleware::from_fn(guard::refuse_control_characters))
        .layer(cors)
        .with_state(state)
}

/// A route whose POST must say `Content-Type: application/json` (guard::require_json).
/// On the method router, not around the whole router: the check runs only where a
/// route and its method matched, so a POST to a GET-only route stays a 405 and one to
/// no route a 404 (schemathesis found the 415 these got while it ran before routing).
fn json_only(route: MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>> {
    route.route_layer(axum::middleware::from_fn(guard::require_json))
}

fn cors(origins: &[String]) -> CorsLayer {
    // `*` means any origin (tower-http refuses a wildcard inside a list).
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            axum::http::header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_origin_list_means_any_origin() {
        // tower-http panics on `*` inside a list; `CORS_ORIGINS=*` must start anyway.
        let _ = cors(&["*".to_string()]);
        let _ = cors(&[
            "http://localhost:5173".to_string(),
            "not a header\n".to_string(),
        ]);
    }
}
