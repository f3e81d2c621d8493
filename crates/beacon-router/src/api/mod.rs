//! The router's HTTP API: routes and shared state. Handlers are thin; the work is in
//! `routing`, `prober` and `registry`.

mod admin;
mod inference;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::Config;
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
    Router::new()
        .route("/inference", post(inference::inference))
        .route("/v1/chat/completions", post(inference::chat_completions))
        .route("/providers", get(status::providers))
        .route("/health", get(status::health))
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .route("/admin/providers/{name}/probe", post(admin::probe))
        .route("/admin/providers/{name}/drain", post(admin::drain))
        .route("/admin/providers/{name}/enable", post(admin::enable))
        .route("/admin/config", get(admin::config))
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
