//! `POST /api/v1/jobs/cross-region`: the portal's wrapper around a signed spec
//! (portal-contract.md 2.1.1). The spec goes through the same pipeline as `POST
//! /jobs`; the answer carries the portal's fields too.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use serde_json::json;

use super::AppState;
use super::jobs::{accept, answer_submission};
use crate::accept::{Submission, cross_region};
use crate::error::ApiError;

#[utoipa::path(
    post,
    path = "/api/v1/jobs/cross-region",
    tag = "jobs",
    operation_id = "submit_cross_region",
    summary = "Submit the portal's cross-region wrapper around a signed spec",
    request_body(content = super::openapi::Json, description = "`{jobspec, target_regions, ...}` (docs/portal.md)", content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried submission return the first answer"),
    ),
    responses(super::openapi::SubmitAnswers),
)]
pub async fn submit(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    app.rate.check(peer.ip()).map_err(ApiError::RateLimited)?;
    // The wrapper's own shape is checked after the body rules every submission
    // obeys (size, JSON), so a bad body gets the same code as on `POST /jobs`.
    let plain = Submission {
        idempotency_key: None,
        body: &body,
        cross_region: None,
    };
    crate::accept::check_envelope(&plain, &app.limits)?;
    let wrapper = cross_region::parse(&body)?;
    let sub = Submission {
        idempotency_key: headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
        body: wrapper.jobspec,
        cross_region: Some(&wrapper.options),
    };
    let accepted = accept(&app, sub).await?;
    let job = &accepted.job;
    let extra = json!({
        "cross_region_execution_id": job.id,
        "total_regions": wrapper.options.target_regions.len(),
        "target_regions": wrapper.options.target_regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "enable_analysis": wrapper.options.enable_analysis,
        "submitted_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    Ok(answer_submission(&app, &accepted, extra))
}
