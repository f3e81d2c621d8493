//! The portal's result routes (portal-contract.md 2.2, 2.4): the v2 bias analysis, the
//! per-model cross-region page, the cross-region diff family, recent diffs, and the
//! legacy `execute` call. Thin: the shapes are built in `crate::portal` from the same
//! report as `GET /jobs/{id}/report`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use beacon_core::status::JobStatus;
use beacon_store::{ExecutionFilter, ExecutionRecord, JobFilter, JobRecord};
use serde_json::{Value, json};

use super::AppState;
use super::report::load;
use crate::error::ApiError;
use crate::{portal, views};

/// Executions listed in a diff body at most (the rest is said to be `truncated`).
const DIFF_EXECUTIONS: usize = 5000;

async fn job(app: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    app.ctx
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

async fn executions(app: &AppState, f: ExecutionFilter) -> Result<Vec<ExecutionRecord>, ApiError> {
    Ok(app.ctx.store.list_executions(&f).await?.items)
}

/// `GET /api/v2/jobs/{id}/bias-analysis`.
#[utoipa::path(
    get,
    path = "/api/v2/jobs/{id}/bias-analysis",
    tag = "reports",
    operation_id = "bias_analysis",
    summary = "The portal's v2 bias analysis",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The bias analysis (portal-contract.md 2.4)", body = super::openapi::Json),
        (status = 409, description = "INSUFFICIENT_DATA: no question and model has completed answers from two regions yet", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn bias_analysis(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = job(&app, &id).await?;
    let report = load(&app, &id).await?;
    Ok(Json(portal::bias_analysis(
        &report,
        &views::rfc3339(job.created_at),
    )?))
}

/// `GET /executions/{jobId}/cross-region`: with `model_id` and `question_id`, that
/// group's page; without, the job's diff body (the portal's fallback chain calls it
/// bare).
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/cross-region",
    tag = "reports",
    operation_id = "cross_region",
    summary = "The portal's per-model cross-region page",
    params(
        ("id" = String, Path, description = "Job id"),
        ("model_id" = Option<String>, Query, description = "The model"),
        ("question_id" = Option<String>, Query, description = "The question"),
    ),
    responses(
        (status = 200, description = "The cross-region result", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such job or model", body = crate::error::ErrorBody),
    ),
)]
pub async fn cross_region(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let model = q.get("model_id").filter(|s| !s.is_empty());
    let question = q.get("question_id").filter(|s| !s.is_empty());
    let (Some(model), Some(question)) = (model, question) else {
        return diff(&app, &id).await;
    };
    let job = job(&app, &id).await?;
    let report = load(&app, &id).await?;
    let group = portal::find_group(&report, model, question).ok_or_else(|| {
        ApiError::NotFound(format!(
            "job {id} has no answers of model {model} to question {question}"
        ))
    })?;
    let execs = executions(
        &app,
        ExecutionFilter {
            job_id: Some(id.clone()),
            model_id: Some(group.model_id.clone()),
            question_id: Some(group.question_id.clone()),
            limit: 10_000,
            ..Default::default()
        },
    )
    .await?;
    // The report may list only some of a big job's answers: the group's own.
    let answers = crate::analysis::answers_of(group, &execs, &report.regions);
    Ok(Json(portal::cross_region_group(
        &report,
        group,
        &answers,
        &execs,
        &views::rfc3339(job.created_at),
    )))
}

/// `GET|POST /executions/{jobId}/cross-region-diff`, `GET …/regions`, `GET
/// …/diff-analysis`: the same diff body (the portal takes the first that answers).
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/cross-region-diff",
    tag = "reports",
    operation_id = "cross_region_diff",
    summary = "The cross-region diff of a job",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The diff body", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn cross_region_diff(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    diff(&app, &id).await
}

/// `POST /executions/{jobId}/cross-region-diff` (one portal caller POSTs).
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/cross-region-diff",
    tag = "reports",
    operation_id = "cross_region_diff_post",
    summary = "The cross-region diff of a job (POST, as one portal caller sends it)",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The diff body", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn cross_region_diff_post(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    diff(&app, &id).await
}

/// `GET /executions/{jobId}/regions`.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/regions",
    tag = "reports",
    operation_id = "cross_region_regions",
    summary = "The cross-region diff of a job (the portal's second name for it)",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The diff body", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn regions(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    diff(&app, &id).await
}

/// `GET /executions/{jobId}/diff-analysis`.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/diff-analysis",
    tag = "reports",
    operation_id = "diff_analysis",
    summary = "The cross-region diff of a job (the portal's third name for it)",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The diff body", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn diff_analysis(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    diff(&app, &id).await
}

async fn diff(app: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    job(app, id).await?;
    let report = load(app, id).await?;
    let execs = executions(
        app,
        ExecutionFilter {
            job_id: Some(id.to_string()),
            limit: (DIFF_EXECUTIONS + 1) as u32,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(portal::cross_region_diff(
        &report,
        &execs,
        DIFF_EXECUTIONS,
    )))
}

/// `GET /diffs?limit=N`: the newest finished jobs' comparisons, one line each.
#[utoipa::path(
    get,
    path = "/api/v1/diffs",
    tag = "reports",
    operation_id = "diffs",
    summary = "The newest finished jobs' comparisons",
    params(
        ("limit" = Option<u32>, Query, description = "How many"),
    ),
    responses(
        (status = 200, description = "`{diffs, limit}`", body = super::openapi::Json),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
    ),
)]
pub async fn diffs(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.get("limit") {
        None => 20,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ApiError::bad("INVALID_QUERY", "limit must be a whole number"))?
            .clamp(1, 50),
    };
    let mut out = Vec::new();
    for status in [JobStatus::Completed, JobStatus::Failed] {
        let jobs = app
            .ctx
            .store
            .list_jobs(&JobFilter {
                limit,
                offset: 0,
                status: Some(status),
            })
            .await?;
        out.extend(jobs);
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    out.truncate(limit as usize);
    let mut list = Vec::with_capacity(out.len());
    for j in &out {
        let report = load(&app, &j.id).await?;
        list.push(portal::diff_summary(&report, &views::rfc3339(j.created_at)));
    }
    Ok(Json(json!({"diffs": list, "limit": limit})))
}

/// `POST /jobs/{id}/execute`: the previous runner needed jobs started by hand; here a
/// job runs as soon as it is accepted, so this only says where it stands.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/execute",
    tag = "jobs",
    operation_id = "execute_job",
    summary = "Where a job stands (jobs start when accepted)",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    security((), ("control_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "`{id, status, message}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: the runner has a control token and it was not sent", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn execute(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = job(&app, &id).await?;
    Ok(Json(json!({
        "id": job.id, "job_id": job.id, "status": job.status.as_str(),
        "message": "jobs run as soon as they are accepted; nothing to start",
    })))
}
