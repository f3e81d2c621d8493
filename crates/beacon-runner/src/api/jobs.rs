//! Job routes: submit, list, read (with executions), cancel, retry-failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_store::{ExecutionFilter, JobFilter, JobRecord};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use crate::accept::{Accepted, Acceptor, Submission};
use crate::error::ApiError;
use crate::events::EventKind;
use crate::scheduler::{CALLS_CLOSE_WAIT, StopReason};
use crate::views;

/// How long a cancel answered for a job another instance runs waits for that
/// instance to report its calls stopped (it waits up to `CALLS_CLOSE_WAIT` for them
/// itself, then reports either way).
const REMOTE_CANCEL_WAIT: Duration = CALLS_CLOSE_WAIT.saturating_add(Duration::from_secs(1));

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "jobs",
    operation_id = "submit_job",
    summary = "Submit a signed job spec",
    request_body(content = super::openapi::Json, description = "A signed job spec (docs/job-spec.md)", content_type = "application/json"),
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
    let sub = Submission {
        idempotency_key: header(&headers, "idempotency-key"),
        body: &body,
        cross_region: None,
    };
    let accepted = accept(&app, sub).await?;
    Ok(answer_submission(&app, &accepted, json!({})))
}

/// Runs a submission through the acceptance pipeline (the router's catalog fetched
/// only for a new job).
pub async fn accept(app: &AppState, sub: Submission<'_>) -> Result<Accepted, ApiError> {
    let acceptor = Acceptor {
        store: app.ctx.store.as_ref(),
        catalogue: &app.catalogue,
        limits: &app.limits,
        signatures: &app.config.signatures,
        now: Utc::now(),
    };
    acceptor
        .accept(sub, || async {
            app.catalog.get(&app.ctx.router).await.map_err(|f| {
                ApiError::RouterUnavailable(format!(
                    "cannot check models and regions against the router: {}",
                    f.message
                ))
            })
        })
        .await
}

/// 202 with the new job (and `extra` fields), or 200 `idempotent: true` for a replay.
pub fn answer_submission(app: &AppState, accepted: &Accepted, extra: Value) -> Response {
    let job = &accepted.job;
    let mut body = json!({
        "id": job.id, "job_id": job.id, "jobspec_id": job.id,
        "status": job.status.as_str(),
        "total_executions": job.total,
        "min_success_rate": job.min_success_rate,
        "min_regions": job.min_regions,
        "created_at": job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "links": links(&job.id),
    });
    views::merge(&mut body, extra);
    if accepted.created {
        app.ctx.wake.notify_one();
        tracing::info!(job = %job.id, executions = job.total, "job accepted");
        (StatusCode::ACCEPTED, Json(body)).into_response()
    } else {
        body["idempotent"] = json!(true);
        (StatusCode::OK, Json(body)).into_response()
    }
}

fn links(id: &str) -> Value {
    json!({
        "self": format!("/api/v1/jobs/{id}"),
        "executions": format!("/api/v1/jobs/{id}/executions"),
        "events": format!("/api/v1/jobs/{id}/events"),
        "cancel": format!("/api/v1/jobs/{id}/cancel"),
        "report": format!("/api/v1/jobs/{id}/report"),
    })
}

/// `GET /jobs`: a page of jobs, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<views::JobView>,
    pub limit: u32,
    pub offset: u32,
}

fn num(q: &HashMap<String, String>, key: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map(|n| n.min(max))
            .map_err(|_| ApiError::bad("INVALID_QUERY", format!("{key} must be a whole number"))),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    summary = "List jobs, newest first",
    params(
        ("status" = Option<String>, Query, description = "Only jobs in this status"),
        ("limit" = Option<u32>, Query, description = "Jobs per page (default 50, at most 500)"),
        ("offset" = Option<u32>, Query, description = "Jobs to skip"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
    ),
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, ApiError> {
    let status =
        match q.get("status").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
                ApiError::bad("INVALID_QUERY", format!("unknown job status {s:?}"))
            })?),
        };
    let filter = JobFilter {
        limit: num(&q, "limit", 50, 500)?,
        offset: num(&q, "offset", 0, u32::MAX)?,
        status,
    };
    let jobs = app.ctx.store.list_jobs(&filter).await?;
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let counts = app.ctx.store.counts_many(&ids).await?;
    let list = jobs
        .iter()
        .map(|j| {
            let c = counts
                .iter()
                .find(|(id, _)| id == &j.id)
                .map(|(_, c)| *c)
                .unwrap_or_default();
            views::job_view(j, &c, false)
        })
        .collect();
    Ok(Json(JobList {
        jobs: list,
        limit: filter.limit,
        offset: filter.offset,
    }))
}

async fn find(app: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    app.ctx
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    summary = "A job with its spec and progress",
    params(
        ("id" = String, Path, description = "Job id"),
        ("include" = Option<String>, Query, description = "`executions` or `latest` (comma separated) adds executions"),
        ("exec_limit" = Option<u32>, Query, description = "Executions listed (default 1000)"),
        ("exec_offset" = Option<u32>, Query, description = "Executions skipped"),
    ),
    responses(
        (status = 200, description = "The job, with `job` (the spec) and, when asked, `executions` and `executions_total`", body = views::JobView),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&app, &id).await?;
    let counts = app.ctx.store.counts(&id).await?;
    let mut body = views::job(&job, &counts, true);
    let include = q.get("include").map(String::as_str).unwrap_or("");
    if include
        .split(',')
        .any(|i| i == "executions" || i == "latest")
    {
        let latest = include.split(',').any(|i| i == "latest");
        let filter = ExecutionFilter {
            job_id: Some(id.clone()),
            limit: if latest {
                1
            } else {
                num(&q, "exec_limit", 1000, 10_000)?
            },
            offset: if latest {
                0
            } else {
                num(&q, "exec_offset", 0, u32::MAX)?
            },
            newest_first: latest,
            ..Default::default()
        };
        let page = app.ctx.store.list_executions(&filter).await?;
        let max = app.ctx.cfg.max_total_attempts;
        let plan = views::plan_of(&job);
        body["executions"] = page
            .items
            .iter()
            .map(|e| {
                let q = plan.as_ref().and_then(|p| p.question(&e.question_id));
                views::execution(e, max, q)
            })
            .collect();
        body["executions_total"] = json!(page.total);
    }
    Ok(Json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "cancel_job",
    summary = "Cancel a job; answers once its router calls have closed",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    security((), ("control_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Cancelled (or already finished: `executions_cancelled: 0`)", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: the runner has a control token and it was not sent", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn cancel(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&app, &id).await?;
    if job.status.is_terminal() {
        return Ok(Json(json!({
            "ok": true, "job_id": id, "previous_status": job.status.as_str(), "new_status": job.status.as_str(),
            "executions_cancelled": 0, "message": format!("job is already {}", job.status),
        })));
    }
    // Stop new calls at once (and abort those in flight), then record the cancel.
    let local = app.ctx.jobs.get(&id);
    if let Some(control) = &local {
        control.stop(StopReason::UserCancel);
    }
    // Another instance runs the job (a live lease that is not ours): it learns of the
    // cancel from the database's signal when the cancel commits, and says when its
    // calls have stopped. Listen before committing, so its answer cannot be missed.
    let remote_owner = local.is_none()
        && job
            .lease_owner
            .as_deref()
            .is_some_and(|o| o != app.config.instance_id)
        && job.lease_expires_at.is_some_and(|t| t > Utc::now());
    let ack = app.ctx.acks.expect(&id);
    let acknowledged = ack.notify().notified();
    tokio::pin!(acknowledged);
    acknowledged.as_mut().enable();
    let failure = Failure::new(
        ErrorCode::Cancelled,
        Stage::Scheduler,
        "cancelled by a user",
    )
    .with_transient(false);
    let outcome = app
        .ctx
        .store
        .request_cancel(&id, &failure, Utc::now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    let calls_stopped = if let Some(control) = &local {
        let idle = control.wait_idle(CALLS_CLOSE_WAIT).await;
        if !idle {
            tracing::warn!(job = %id, "cancel: some router calls were still closing after {CALLS_CLOSE_WAIT:?}");
        }
        idle
    } else if remote_owner {
        let acked = tokio::time::timeout(REMOTE_CANCEL_WAIT, acknowledged)
            .await
            .is_ok();
        if !acked {
            tracing::warn!(job = %id, owner = ?job.lease_owner, "cancel: the instance running the job did not confirm within {REMOTE_CANCEL_WAIT:?}; it stops at its next heartbeat");
        }
        acked
    } else {
        // Nobody runs it (queued, or its owner's lease ran out): nothing is in flight.
        true
    };
    if let Ok(Some(job)) = app.ctx.store.get_job(&id).await {
        let counts = app.ctx.store.counts(&id).await.unwrap_or_default();
        app.ctx
            .events
            .publish(&id, EventKind::JobUpdate, views::job(&job, &counts, false));
    }
    Ok(Json(json!({
        "ok": true,
        "job_id": id,
        "previous_status": outcome.previous_status.as_str(),
        "new_status": outcome.new_status.as_str(),
        "executions_cancelled": outcome.executions_cancelled,
        "cancelled_at": outcome.cancelled_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "calls_stopped": calls_stopped,
    })))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/retry-failed",
    tag = "jobs",
    operation_id = "retry_failed",
    summary = "Re-queue the failed and timed-out executions of a finished job",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    security((), ("control_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "`{requeued, status}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: the runner has a control token and it was not sent", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
        (status = 409, description = "JOB_NOT_FINISHED: the job is still queued or running", body = crate::error::ErrorBody),
    ),
)]
pub async fn retry_failed(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&app, &id).await?;
    if !matches!(job.status, JobStatus::Completed | JobStatus::Failed) {
        return Err(ApiError::Conflict {
            code: "JOB_NOT_FINISHED",
            message: format!(
                "job is {}; only a completed or failed job can retry its failed executions",
                job.status
            ),
        });
    }
    let requeued = app.ctx.store.retry_failed(&id).await?;
    app.reports.forget(&id);
    if requeued > 0 {
        app.ctx.wake.notify_one();
    }
    let status = if requeued > 0 {
        JobStatus::Queued
    } else {
        job.status
    };
    Ok(Json(json!({
        "ok": true, "job_id": id, "requeued": requeued, "status": status.as_str(),
        "statuses_retried": [ExecutionStatus::Failed.as_str(), ExecutionStatus::Timeout.as_str()],
    })))
}
