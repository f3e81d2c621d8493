//! `GET /jobs/{id}/report` (the analysis as JSON) and `/report.html` (the page). The
//! analysis is computed from stored executions on demand and cached once the job is
//! terminal (nothing can change it any more, except a retry, which clears the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use beacon_store::ExecutionFilter;

use super::AppState;
use crate::analysis::{self, Report};
use crate::error::ApiError;
use crate::plan::StoredPlan;
use crate::views;

/// Reports of terminal jobs.
#[derive(Default)]
pub struct ReportCache {
    reports: Mutex<HashMap<String, Arc<Report>>>,
}

impl ReportCache {
    fn get(&self, id: &str) -> Option<Arc<Report>> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
    fn put(&self, report: Arc<Report>) {
        let mut map = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        // A bound on memory: old entries are cheap to recompute.
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(report.job_id.clone(), report);
    }
    pub fn forget(&self, id: &str) {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

pub async fn load(app: &AppState, id: &str) -> Result<Arc<Report>, ApiError> {
    if let Some(r) = app.reports.get(id) {
        return Ok(r);
    }
    let job = app
        .ctx
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    let plan: StoredPlan = serde_json::from_value(job.plan_json.clone())
        .map_err(|e| ApiError::Internal(format!("stored plan of {id} unreadable: {e}")))?;
    let filter = ExecutionFilter {
        job_id: Some(id.to_string()),
        limit: u32::try_from(job.total).unwrap_or(u32::MAX),
        ..Default::default()
    };
    let executions = app.ctx.store.list_executions(&filter).await?.items;
    let counts = app.ctx.store.counts(id).await?;
    let report = Arc::new(analysis::build(
        &job,
        &plan,
        &executions,
        views::progress(&counts),
    ));
    if report.terminal {
        app.reports.put(report.clone());
    }
    Ok(report)
}

pub async fn json(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Report>, ApiError> {
    Ok(Json(load(&app, &id).await?.as_ref().clone()))
}

pub async fn html(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let report = load(&app, &id).await?;
    let page = analysis::html::render(&report);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page is self-contained: no script, style or image may come from elsewhere.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
        .into_response())
}
