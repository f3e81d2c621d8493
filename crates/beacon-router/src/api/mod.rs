//! The router's HTTP API: routes and shared state. Handlers are thin; the work is in
//! `routing`, `prober` and `registry`. Only `/health` and `/providers` answer browsers
//! (CORS, `cors_origins`): the portal reads them from the page; everything else is for
//! servers and operators.

mod admin;
mod auth;
mod inference;
mod openai;
pub mod openapi;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{Config, CorsOrigins};
use crate::idempotency::IdempotencyCache;
use crate::metrics::Metrics;
use crate::routing;

/// Everything handlers share.
pub struct AppState {
    pub config: Config,
    pub router: routing::Router,
    pub idempotency: IdempotencyCache,
    pub metrics: Arc<Metrics>,
    pub first_round: Arc<AtomicUsize>,
}

pub fn routes(state: Arc<AppState>) -> Router {
    // Client bodies are read up to `[limits] max_request_bytes`; the inference handlers
    // turn a refusal into a 413 in their own error shapes.
    let limit = usize::try_from(state.config.limits.max_request_bytes).unwrap_or(usize::MAX);
    // What the portal reads from the browser (portal-contract.md 3). `/inference` and
    // `/v1/chat/completions` are server to server (the runner) and spend money; admin
    // routes take a bearer token; neither is opened to pages on other origins.
    let browser = Router::new()
        .route("/providers", get(status::providers))
        .route("/health", get(status::health))
        .layer(cors(&state.config.cors_origins));
    Router::new()
        .route("/inference", post(inference::inference))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .merge(browser)
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .route("/admin/providers/{name}/probe", post(admin::probe))
        .route("/admin/providers/{name}/drain", post(admin::drain))
        .route("/admin/providers/{name}/enable", post(admin::enable))
        .route("/admin/config", get(admin::config))
        .route("/openapi.json", get(openapi::serve))
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Read-only CORS for the browser routes: GET (and its preflight) from the allowlist,
/// no credentials. The portal's fetch helper sends `Content-Type: application/json`
/// even on GET (portal-contract.md, "Transport"), which makes the browser ask first
/// (preflight), so that header is allowed.
fn cors(origins: &CorsOrigins) -> CorsLayer {
    let allow = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        // Validated at start: every entry is a plain origin, so none is skipped here.
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::ACCEPT])
        .max_age(Duration::from_secs(600))
}
