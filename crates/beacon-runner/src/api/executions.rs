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

async fn page(app: &AppState, f: ExecutionFilter) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = (f.limit, f.offset);
    let page = app.ctx.store.list_executions(&f).await?;
    let max = app.ctx.cfg.max_total_attempts;
    Ok(Json(json!({
        "executions": page.items.iter().map(|e| views::execution(e, max)).collect::<Vec<_>>(),
        "total": page.total, "limit": limit, "offset": offset,
    })))
}

async fn job_exists(app: &AppState, id: &str) -> Result<(), ApiError> {
    match app.ctx.store.get_job(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("job {id} not found"))),
    }
}

pub async fn for_job(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    job_exists(&app, &id).await?;
    page(&app, filter(&q, Some(id), 100)?).await
}

pub async fn for_job_all(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    job_exists(&app, &id).await?;
    page(&app, filter(&q, Some(id), 10_000)?).await
}

pub async fn newest(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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

pub async fn details(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = find(&app, &id).await?;
    let attempts = app.ctx.store.list_attempts(&id).await?;
    Ok(Json(views::execution_details(
        &e,
        app.ctx.cfg.max_total_attempts,
        json!(attempts),
    )))
}

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
