//! `GET /jobs/{id}/report` (the analysis as JSON), `/report.html` (the page, its
//! groups `?page=` by page) and `/report/answers.jsonl` (every answer, streamed). The
//! analysis is computed from stored executions read page by page (`analysis::build`),
//! in bounded memory, and cached: terminal jobs' reports until evicted (a retry
//! clears them), running jobs' for a few seconds. Concurrent requests for the same
//! report wait for one computation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use beacon_store::{ExecutionFilter, ExecutionRecord, JobRecord};
use moka::future::Cache;
use serde::Serialize;

use super::AppState;
use crate::analysis::html::{self, ANSWERS_PER_GROUP, GROUPS_PER_PAGE, Paging};
use crate::analysis::{
    self, Answer, FirstPass, MAX_REPORT_ANSWERS, Report, ReportBuilder, answers_of,
};
use crate::error::ApiError;
use crate::plan::StoredPlan;
use crate::views;

/// Executions read from the store per page.
const PAGE: u32 = 500;
/// Bytes of reports the cache holds by default.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// How long the report of a job that has not finished is reused: a burst of requests
/// (six browser tabs, the portal polling) is served by one computation.
const LIVE_REPORT: Duration = Duration::from_secs(5);
/// Reports nobody asked for in this long are dropped.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// Reports by (job id, version): a terminal job's version is its status and how many
/// judge labels it has; a running
/// job's is the `LIVE_REPORT` window it was computed in.
pub struct ReportCache {
    reports: Cache<(String, String), Arc<Report>>,
}

impl Default for ReportCache {
    fn default() -> Self {
        ReportCache::with_capacity(CACHE_BYTES)
    }
}

impl ReportCache {
    /// A cache holding about `bytes` of reports (each weighed by [`weight`]).
    pub fn with_capacity(bytes: u64) -> ReportCache {
        ReportCache {
            reports: Cache::builder()
                .max_capacity(bytes)
                .weigher(|_k, r: &Arc<Report>| weight(r))
                .time_to_idle(IDLE)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Every report of job `id` (a retry changes it).
    pub fn forget(&self, id: &str) {
        let id = id.to_string();
        if let Err(e) = self.reports.invalidate_entries_if(move |k, _| k.0 == id) {
            tracing::error!(error = %e, "report cache: cannot invalidate");
        }
    }

    /// Bytes held (after pending evictions have run).
    pub async fn weighted_size(&self) -> u64 {
        self.reports.run_pending_tasks().await;
        self.reports.weighted_size()
    }

    pub async fn insert(&self, key: (String, String), report: Arc<Report>) {
        self.reports.insert(key, report).await;
    }

    pub async fn contains(&self, key: &(String, String)) -> bool {
        self.reports.get(key).await.is_some()
    }
}

/// About how many bytes a report holds: its strings and a fixed cost per element.
pub fn weight(r: &Report) -> u32 {
    let answers: usize = r
        .groups
        .iter()
        .flat_map(|g| &g.answers)
        .map(|a| 256 + a.response.as_deref().map_or(0, str::len))
        .sum();
    let groups: usize = r
        .groups
        .iter()
        .map(|g| {
            512 + g.question.len()
                + g.tally.len() * 128
                + g.key_differences
                    .iter()
                    .map(|d| 128 + d.snippets.values().map(String::len).sum::<usize>())
                    .sum::<usize>()
        })
        .sum();
    u32::try_from(4096 + answers + groups).unwrap_or(u32::MAX)
}

async fn job(app: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    app.ctx
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

fn plan(job: &JobRecord) -> Result<StoredPlan, ApiError> {
    serde_json::from_value(job.plan_json.clone())
        .map_err(|e| ApiError::Internal(format!("stored plan of {} unreadable: {e}", job.id)))
}

/// The report of job `id`, from the cache or computed once for all who ask.
pub async fn load(app: &AppState, id: &str) -> Result<Arc<Report>, ApiError> {
    let job = job(app, id).await?;
    let version = if job.status.is_terminal() {
        // Judge labels arrive after a job has finished (crate::judge), from any
        // instance: their count is part of the version, so a new label makes a new report.
        let judged = app.ctx.store.count_judge_labels(id).await?;
        format!("{}:{judged}", job.status.as_str())
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("live-{}", now.as_secs() / LIVE_REPORT.as_secs())
    };
    app.reports
        .reports
        .try_get_with((id.to_string(), version), compute(app, job))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Calls `f` on each of the job's executions in `seq` order, one store page at a time,
/// so a pass over a 100,000-execution job holds one page, not the job.
async fn each_execution(
    store: &dyn beacon_store::Store,
    job_id: &str,
    mut f: impl FnMut(&beacon_store::ExecutionRecord),
) -> Result<(), ApiError> {
    let mut after = None;
    loop {
        let page = store.job_executions_after(job_id, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.seq);
        page.iter().for_each(&mut f);
    }
}

/// Two passes over the job's executions, a page at a time: the corpus's document
/// frequencies and the rule labels, then the groups, set against the judge's labels
/// when there are any (docs/analysis.md).
async fn compute(app: &AppState, job: JobRecord) -> Result<Arc<Report>, ApiError> {
    app.ctx
        .metrics
        .inc("beacon_runner_report_computations_total", Vec::new());
    let plan = plan(&job)?;
    let store = &app.ctx.store;
    let mut first = FirstPass::default();
    each_execution(store.as_ref(), &job.id, |e| first.add(&plan, e)).await?;
    let rubric = crate::judge::RUBRIC_VERSION;
    let judge_labels = store.judge_labels(&job.id, rubric).await?;
    let mut builder =
        ReportBuilder::new(&plan, &first, MAX_REPORT_ANSWERS).with_judge(rubric, judge_labels);
    each_execution(store.as_ref(), &job.id, |e| builder.add(e)).await?;
    let counts = store.counts(&job.id).await?;
    Ok(Arc::new(builder.finish(&job, views::progress(&counts))))
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/report",
    tag = "reports",
    operation_id = "job_report",
    summary = "The cross-region analysis of a job",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The report (docs/analysis.md)", body = crate::analysis::Report),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn json(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let report = load(&app, &id).await?;
    let body = serde_json::to_vec(&*report)
        .map_err(|e| ApiError::Internal(format!("report of {id} not serialisable: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn number(q: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad("INVALID_QUERY", format!("{key} must be a whole number ≥ 1"))
        }),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/report.html",
    tag = "reports",
    operation_id = "job_report_html",
    summary = "The report as a self-contained page, paginated",
    params(
        ("id" = String, Path, description = "Job id"),
        ("page" = Option<u32>, Query, description = "Page, from 1"),
        ("per_page" = Option<u32>, Query, description = "Groups per page"),
    ),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 400, description = "INVALID_QUERY (or INVALID_CHARACTER): a query parameter is not understood", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job or page", body = crate::error::ErrorBody),
    ),
)]
pub async fn html(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = number(&q, "page", 1)?;
    let per_page = number(&q, "per_page", GROUPS_PER_PAGE)?;
    if per_page > html::MAX_GROUPS_PER_PAGE {
        return Err(ApiError::bad(
            "INVALID_QUERY",
            format!("per_page must be at most {}", html::MAX_GROUPS_PER_PAGE),
        ));
    }
    let report = load(&app, &id).await?;
    let mut paging = Paging::new(page, per_page);
    let pages = paging.pages(report.groups.len());
    if page > pages {
        return Err(ApiError::NotFound(format!(
            "page {page} of the report of {id}: it has {pages}"
        )));
    }
    // The groups of this page whose answers the report does not list: from the store.
    for i in paging.range(report.groups.len()) {
        let g = &report.groups[i];
        if (g.answers.len() as u64) < g.answers_total.min(ANSWERS_PER_GROUP as u64) {
            let filter = ExecutionFilter {
                job_id: Some(id.clone()),
                question_id: Some(g.question_id.clone()),
                model_id: Some(g.model_id.clone()),
                limit: ANSWERS_PER_GROUP as u32,
                ..Default::default()
            };
            let execs = app.ctx.store.list_executions(&filter).await?.items;
            paging
                .answers
                .insert(i, answers_of(g, &execs, &report.regions));
        }
    }
    let page = html::render_page(&report, &paging);
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

/// One line of the answers export: the report's answer with its group.
#[derive(Serialize)]
struct ExportLine<'a> {
    question_id: &'a str,
    model_id: &'a str,
    #[serde(flatten)]
    answer: Answer,
}

fn export_lines(plan: &StoredPlan, page: &[ExecutionRecord]) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(page.len() * 512);
    for e in page {
        let q = plan.question(&e.question_id);
        let line = ExportLine {
            question_id: &e.question_id,
            model_id: &e.model_id,
            answer: analysis::answer(e, q.map(analysis::question_of).unwrap_or_default()),
        };
        serde_json::to_writer(&mut out, &line).map_err(|err| {
            ApiError::Internal(format!("answer {} not serialisable: {err}", e.id))
        })?;
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

/// `GET /jobs/{id}/report/answers.jsonl`: every answer of the job in job order, one
/// JSON object a line, read from the store a page at a time while it is sent.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/report/answers.jsonl",
    tag = "reports",
    operation_id = "job_answers",
    summary = "Every answer of a job, one JSON object a line",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "Answers in job order", body = String, content_type = "application/x-ndjson"),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn answers_jsonl(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job(&app, &id).await?;
    let plan = Arc::new(plan(&job)?);
    let stream = futures_util::stream::try_unfold(Some(None), move |state| {
        let (app, plan, id) = (app.clone(), plan.clone(), id.clone());
        async move {
            let Some(after) = state else {
                return Ok(None);
            };
            let page = app
                .ctx
                .store
                .job_executions_after(&id, after, PAGE)
                .await
                .map_err(ApiError::from)?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            let next = Some(Some(last.seq));
            Ok::<_, ApiError>(Some((export_lines(&plan, &page)?, next)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_core::status::JobStatus;
    use serde_json::json;

    fn report(id: &str, answer_bytes: usize) -> Arc<Report> {
        let mut r = crate::analysis::build(&job(id), &empty_plan(), &[], json!({}));
        // One group with one long answer: the weight follows the text.
        r.groups.push(crate::analysis::Group {
            question_id: "q".into(),
            question: "q?".into(),
            category: "c".into(),
            sensitive: false,
            markers: Vec::new(),
            model_id: "m".into(),
            divergence: None,
            pairs: Vec::new(),
            within_region_divergence: None,
            divergence_beyond_noise: None,
            censorship: Default::default(),
            deflection: Default::default(),
            key_differences: Vec::new(),
            tally: Default::default(),
            answers_total: 1,
            answers: vec![Answer {
                execution_id: "e".into(),
                region: "us-east".into(),
                run_index: 0,
                status: "completed".into(),
                classification: "substantive".into(),
                label: "substantive".into(),
                response: Some("x".repeat(answer_bytes)),
                length: answer_bytes,
                markers_present: Vec::new(),
                provider_id: None,
                provider_region_label: None,
                latency_ms: None,
                receipt_sha256: None,
                simulated: false,
                failure_code: None,
            }],
        });
        Arc::new(r)
    }

    fn empty_plan() -> StoredPlan {
        serde_json::from_value(json!({"questions": [], "models": [], "regions": ["us-east"], "runs": 1,
            "temperature": 0.0, "max_tokens": 1, "timeout_ms": 1, "provider_timeout_ms": 1, "trace_id": "t"}))
        .unwrap()
    }

    fn job(id: &str) -> JobRecord {
        let now = chrono::Utc::now();
        JobRecord {
            id: id.into(),
            spec_json: String::new(),
            spec_sha256: String::new(),
            benchmark: None,
            plan_json: json!({}),
            status: JobStatus::Completed,
            min_success_rate: 0.5,
            min_regions: 0,
            total: 1,
            created_at: now,
            started_at: None,
            finished_at: None,
            failure_reason: None,
            failure_message: None,
            submitter_key: None,
            idempotency_key: None,
            lease_owner: None,
            lease_expires_at: None,
            cancel_requested_at: None,
        }
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_bytes_not_by_count() {
        // 1 MiB of reports; each about 100 KB: never more than about ten held,
        // although a count bound of 256 would keep all forty.
        let cache = ReportCache::with_capacity(1024 * 1024);
        let one = weight(&report("x", 100_000));
        assert!((100_000..120_000).contains(&one), "{one}");
        for i in 0..40 {
            let id = format!("job-{i}");
            cache
                .insert((id.clone(), "completed".into()), report(&id, 100_000))
                .await;
            assert!(cache.weighted_size().await <= 1024 * 1024);
        }
        let mut held = 0;
        for i in 0..40 {
            held += usize::from(
                cache
                    .contains(&(format!("job-{i}"), "completed".into()))
                    .await,
            );
        }
        assert!((1..=10).contains(&held), "{held} held");
        // A small report still fits; forget drops every version of a job.
        cache
            .insert(("small".into(), "completed".into()), report("small", 10))
            .await;
        cache
            .insert(("small".into(), "live-1".into()), report("small", 10))
            .await;
        cache.forget("small");
        assert!(!cache.contains(&("small".into(), "completed".into())).await);
        assert!(!cache.contains(&("small".into(), "live-1".into())).await);
    }
}
