//! Execution routes: per-job listing with filters, newest across jobs, details and
//! receipt.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use beacon_core::Region;
use beacon_core::status::ExecutionStatus;
use beacon_store::{ExecutionFilter, ExecutionRecord};
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::views;

fn filter(
    q: &HashMap<String, String>,
    job_id: Option<String>,
    default_limit: u32,
) -> Result<ExecutionFilter, ApiError> {
    let bad = |m: String| ApiError::bad("INVALID_QUERY", m);
    let num = |key: &str, default: u32, max: u32| -> Result<u32, ApiError> {
        q.get(key).map_or(Ok(default), |v| {
            v.parse::<u32>()
                .map(|n| n.min(max))
                .map_err(|_| bad(format!("{key} must be a whole number")))
        })
    };
    let region = match q.get("region").filter(|r| !r.is_empty()) {
        None => None,
        // Any alias works: `EU` and `eu-west` find the same rows.
        Some(r) => Some(
            Region::parse(r)
                .map_err(|e| bad(e.to_string()))?
                .to_string(),
        ),
    };
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            ExecutionStatus::parse(s)
                .ok_or_else(|| bad(format!("unknown execution status {s:?}")))?,
        ),
    };
    Ok(ExecutionFilter {
        job_id,
        region,
        model_id: q.get("model_id").filter(|s| !s.is_empty()).cloned(),
        question_id: q.get("question_id").filter(|s| !s.is_empty()).cloned(),
        status,
        limit: num("limit", default_limit, 10_000)?,
        offset: num("offset", 0, u32::MAX)?,
        newest_first: false,
    })
}

/// A page of executions.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ExecutionPage {
    /// Executions as runner.md ("Execution JSON") lists their fields.
    #[schema(value_type = Vec<Object>)]
    pub executions: Vec<Value>,
    /// Executions matching the filters, on every page.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

async fn page(app: &AppState, f: ExecutionFilter) -> Result<Json<ExecutionPage>, ApiError> {
    let (limit, offset) = (f.limit, f.offset);
    let page = app.ctx.store.list_executions(&f).await?;
    let max = app.ctx.cfg.max_total_attempts;
    let executions = views::Plans::default()
        .views(app.ctx.store.as_ref(), &page.items, max)
        .await;
    Ok(Json(ExecutionPage {
        executions,
        total: page.total,
        limit,
        offset,
    }))
}

async fn job_exists(app: &AppState, id: &str) -> Result<(), ApiError> {
    match app.ctx.store.get_job(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("job {id} not found"))),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/executions",
    tag = "executions",
    operation_id = "job_executions",
    summary = "A page of a job's executions",
    params(
        ("id" = String, Path, description = "Job id"),
        ("region" = Option<String>, Query, description = "Only this region (any alias: `EU` = `eu-west`)"),
        ("status" = Option<String>, Query, description = "Only this execution status"),
        ("model_id" = Option<String>, Query, description = "Only this model"),
        ("question_id" = Option<String>, Query, description = "Only this question"),
        ("limit" = Option<u32>, Query, description = "Rows per page (at most 10000)"),
        ("offset" = Option<u32>, Query, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionPage),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn for_job(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ExecutionPage>, ApiError> {
    job_exists(&app, &id).await?;
    page(&app, filter(&q, Some(id), 100)?).await
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/executions/all",
    tag = "executions",
    operation_id = "job_executions_all",
    summary = "A job's executions (default limit 10000)",
    params(
        ("id" = String, Path, description = "Job id"),
        ("region" = Option<String>, Query, description = "Only this region (any alias: `EU` = `eu-west`)"),
        ("status" = Option<String>, Query, description = "Only this execution status"),
        ("model_id" = Option<String>, Query, description = "Only this model"),
        ("question_id" = Option<String>, Query, description = "Only this question"),
        ("limit" = Option<u32>, Query, description = "Rows per page (at most 10000)"),
        ("offset" = Option<u32>, Query, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionPage),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn for_job_all(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ExecutionPage>, ApiError> {
    job_exists(&app, &id).await?;
    page(&app, filter(&q, Some(id), 10_000)?).await
}

#[utoipa::path(
    get,
    path = "/api/v1/executions",
    tag = "executions",
    operation_id = "list_executions",
    summary = "Executions of all jobs, newest first",
    params(
        ("job" = Option<String>, Query, description = "Only this job"),
        ("job_id" = Option<String>, Query, description = "Only this job (alias of job)"),
        ("region" = Option<String>, Query, description = "Only this region (any alias: `EU` = `eu-west`)"),
        ("status" = Option<String>, Query, description = "Only this execution status"),
        ("model_id" = Option<String>, Query, description = "Only this model"),
        ("question_id" = Option<String>, Query, description = "Only this question"),
        ("limit" = Option<u32>, Query, description = "Rows per page (at most 10000)"),
        ("offset" = Option<u32>, Query, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "A page of executions", body = ExecutionPage),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
    ),
)]
pub async fn newest(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ExecutionPage>, ApiError> {
    let mut f = filter(&q, q.get("job").or(q.get("job_id")).cloned(), 100)?;
    f.newest_first = true;
    page(&app, f).await
}

async fn find(app: &AppState, id: &str) -> Result<ExecutionRecord, ApiError> {
    app.ctx
        .store
        .get_execution(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))
}

#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/details",
    tag = "executions",
    operation_id = "execution_details",
    summary = "One execution with its attempts",
    params(
        ("id" = String, Path, description = "Execution id"),
    ),
    responses(
        (status = 200, description = "The execution and its attempts", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such execution", body = crate::error::ErrorBody),
    ),
)]
pub async fn details(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = find(&app, &id).await?;
    let attempts = app.ctx.store.list_attempts(&id).await?;
    let mut plans = views::Plans::default();
    let question = plans
        .get(app.ctx.store.as_ref(), &e.job_id)
        .await
        .and_then(|p| p.question(&e.question_id));
    Ok(Json(views::execution_details(
        &e,
        app.ctx.cfg.max_total_attempts,
        question,
        json!(attempts),
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/receipt",
    tag = "executions",
    operation_id = "execution_receipt",
    summary = "An execution's signed receipt",
    params(
        ("id" = String, Path, description = "Execution id"),
    ),
    responses(
        (status = 200, description = "The receipt (docs/signing.md)", body = super::openapi::Json),
        (status = 404, description = "NOT_FOUND: no such execution or receipt", body = crate::error::ErrorBody),
    ),
)]
pub async fn receipt(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = find(&app, &id).await?;
    let receipt = e.receipt.clone().ok_or_else(|| {
        ApiError::NotFound(format!(
            "execution {id} has no receipt yet (status {})",
            e.status
        ))
    })?;
    Ok(Json(views::receipt_for_portal(&e, receipt)))
}
