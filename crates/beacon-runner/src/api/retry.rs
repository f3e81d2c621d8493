//! The portal's retry calls (portal-contract.md 2.2): `POST
//! /executions/{id}/retry-question` with `{region, question_index}` and `POST
//! /executions/{id}/retry-all-failed`. `{id}` may name an execution or a job (the two
//! portal callers disagree); the region may be a UI code (`US`) or a canonical slug.
//! A retry re-queues a failed or timed-out execution; its job is reopened if it had
//! finished, and the scheduler runs it again. Bounded by
//! `scheduler.max_total_attempts` (429 past it).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use beacon_core::Region;
use beacon_core::status::ExecutionStatus;
use beacon_store::{ExecutionFilter, ExecutionRecord, JobRecord};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::plan::StoredPlan;
use crate::views;

/// What the body says; both fields optional.
struct Ask {
    region: Option<Region>,
    question_index: Option<usize>,
}

fn ask(body: &[u8]) -> Result<Ask, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Ask {
            region: None,
            question_index: None,
        });
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("INVALID_JSON", format!("body is not valid JSON: {e}")))?;
    let region = match v.get("region") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            Region::parse(s)
                .map_err(|e| ApiError::bad("UNKNOWN_REGION", format!("region {s:?}: {e}")))?,
        ),
        Some(other) => {
            return Err(ApiError::bad(
                "UNKNOWN_REGION",
                format!("region must be a string, not {other}"),
            ));
        }
    };
    let question_index = match v.get("question_index") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad(
                        "INVALID_QUESTION_INDEX",
                        "question_index must be a whole number ≥ 0",
                    )
                })?,
        ),
    };
    Ok(Ask {
        region,
        question_index,
    })
}

/// The executions `{id}` and the body name: the execution itself, or the cells of the
/// job's `question_index`-th question in `region` (every model).
async fn targets(app: &AppState, id: &str, ask: &Ask) -> Result<Vec<ExecutionRecord>, ApiError> {
    if let Some(e) = app.ctx.store.get_execution(id).await? {
        if let Some(r) = &ask.region {
            if r.as_str() != e.region {
                return Err(ApiError::bad(
                    "REGION_MISMATCH",
                    format!("execution {id} ran in {}, not {r}", e.region),
                ));
            }
        }
        return Ok(vec![e]);
    }
    let job = job_of(app, id).await?;
    let region = ask.region.clone().ok_or_else(|| {
        ApiError::bad(
            "REGION_REQUIRED",
            format!("{id} is a job: say which region to retry"),
        )
    })?;
    let plan: StoredPlan = serde_json::from_value(job.plan_json.clone())
        .map_err(|e| ApiError::Internal(format!("stored plan of {id} unreadable: {e}")))?;
    let index = ask.question_index.unwrap_or(0);
    let question = plan.questions.get(index).ok_or_else(|| {
        ApiError::bad(
            "INVALID_QUESTION_INDEX",
            format!(
                "job {id} has {} question(s); question_index {index} is out of range",
                plan.questions.len()
            ),
        )
    })?;
    let found = app
        .ctx
        .store
        .list_executions(&ExecutionFilter {
            job_id: Some(job.id.clone()),
            region: Some(region.to_string()),
            question_id: Some(question.id.clone()),
            limit: 10_000,
            ..Default::default()
        })
        .await?
        .items;
    Ok(found)
}

async fn job_of(app: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    app.ctx
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no execution or job {id}")))
}

#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/retry-question",
    tag = "jobs",
    operation_id = "retry_question",
    summary = "Retry one failed execution (the portal's retry button)",
    request_body(content = Option<super::openapi::Json>, description = "`{region, question_index}`, both optional", content_type = "application/json"),
    params(
        ("id" = String, Path, description = "An execution id or a job id"),
    ),
    security((), ("control_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Retrying (or already completed: its result)", body = super::openapi::Json),
        (status = 202, description = "Already queued or running", body = super::openapi::Json),
        (status = 400, description = "INVALID_JSON, UNKNOWN_REGION, NOT_RETRYABLE or an out-of-range question_index", body = crate::error::ErrorBody),
        (status = 401, description = "UNAUTHORIZED: the runner has a control token and it was not sent", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such execution or job", body = crate::error::ErrorBody),
        (status = 429, description = "MAX_RETRIES: the execution used scheduler.max_total_attempts", body = super::openapi::RetryLimit),
    ),
)]
pub async fn retry_question(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ask = ask(&body)?;
    let targets = targets(&app, &id, &ask).await?;
    let cap = app.ctx.cfg.max_total_attempts;
    let common = |e: &ExecutionRecord| {
        json!({
            "execution_id": e.id, "job_id": e.job_id, "region": e.region,
            "question_id": e.question_id, "model_id": e.model_id,
            "question_index": ask.question_index.unwrap_or(0),
            "updated_at": views::rfc3339(Utc::now()),
        })
    };
    // Already running or waiting: nothing to do yet.
    if let Some(e) = targets.iter().find(|e| !e.status.is_terminal()) {
        let mut body = common(e);
        body["status"] = json!(e.status.as_str());
        body["message"] = json!("the execution is already queued or running");
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let failed: Vec<&ExecutionRecord> = targets
        .iter()
        .filter(|e| matches!(e.status, ExecutionStatus::Failed | ExecutionStatus::Timeout))
        .collect();
    let Some(first) = failed.first() else {
        return match targets.first() {
            Some(e) if e.status == ExecutionStatus::Completed => {
                let mut body = common(e);
                body["status"] = json!("completed");
                body["result"] = views::execution(e, cap, None)["output"].clone();
                Ok(Json(body).into_response())
            }
            Some(e) => Err(ApiError::bad(
                "NOT_RETRYABLE",
                format!(
                    "execution {} is {}: only failed or timed-out executions are retried",
                    e.id, e.status
                ),
            )),
            None => Err(ApiError::NotFound(format!("no execution of {id} matches"))),
        };
    };
    if let Some(spent) = failed.iter().find(|e| e.attempt_count >= cap) {
        let mut body = common(spent);
        body["error"] = json!("Max retry attempts reached");
        body["error_code"] = json!("MAX_RETRIES");
        body["retry_attempt"] = json!(spent.attempt_count);
        body["max_attempts"] = json!(cap);
        return Ok((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response());
    }
    let mut retried = Vec::new();
    for e in &failed {
        if let Some(out) = app.ctx.store.retry_execution(&e.id).await? {
            if out.requeued {
                retried.push(e.id.clone());
            }
        }
    }
    if retried.is_empty() {
        return Err(ApiError::bad(
            "NOT_RETRYABLE",
            format!(
                "execution {} cannot be retried (its job was cancelled)",
                first.id
            ),
        ));
    }
    app.reports.forget(&first.job_id);
    app.ctx.wake.notify_one();
    let mut body = common(first);
    body["status"] = json!("retrying");
    body["execution_status"] = json!("pending");
    body["retry_attempt"] = json!(first.attempt_count + 1);
    body["max_attempts"] = json!(cap);
    body["retried"] = json!(retried);
    body["result"] = Value::Null;
    Ok(Json(body).into_response())
}

/// `POST /executions/{id}/retry-all-failed`: every failed or timed-out execution of the
/// job (`{id}` a job, or one of its executions).
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/retry-all-failed",
    tag = "jobs",
    operation_id = "retry_all_failed",
    summary = "Retry every failed execution of a job",
    params(
        ("id" = String, Path, description = "A job id or one of its executions"),
    ),
    security((), ("control_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "`{job_id, retried, status}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: the runner has a control token and it was not sent", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such execution or job", body = crate::error::ErrorBody),
    ),
)]
pub async fn retry_all_failed(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job_id = match app.ctx.store.get_execution(&id).await? {
        Some(e) => e.job_id,
        None => job_of(&app, &id).await?.id,
    };
    let failed = app
        .ctx
        .store
        .list_executions(&ExecutionFilter {
            job_id: Some(job_id.clone()),
            limit: 100_000,
            ..Default::default()
        })
        .await?
        .items
        .into_iter()
        .filter(|e| matches!(e.status, ExecutionStatus::Failed | ExecutionStatus::Timeout))
        .filter(|e| e.attempt_count < app.ctx.cfg.max_total_attempts);
    let mut retried = 0u64;
    for e in failed {
        if app
            .ctx
            .store
            .retry_execution(&e.id)
            .await?
            .is_some_and(|o| o.requeued)
        {
            retried += 1;
        }
    }
    if retried > 0 {
        app.reports.forget(&job_id);
        app.ctx.wake.notify_one();
    }
    let job = job_of(&app, &job_id).await?;
    Ok(Json(json!({
        "job_id": job_id, "retried": retried, "status": job.status.as_str(),
    })))
}
