//! `GET /jobs/{id}/events`: Server-Sent Events. A `job_update` snapshot first, then
//! every `job_update` and `execution_update` of the job as they happen; the stream
//! ends after the job reaches a terminal status. A periodic snapshot covers work done
//! by another runner instance.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::error::ApiError;
use crate::events::EventKind;
use crate::views;

/// Snapshot interval, for changes this instance did not make itself.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

async fn snapshot(app: &AppState, id: &str) -> Option<(Value, bool)> {
    let job = app.ctx.store.get_job(id).await.ok()??;
    let counts = app.ctx.store.counts(id).await.ok()?;
    Some((views::job(&job, &counts, false), job.status.is_terminal()))
}

fn sse(kind: EventKind, data: &Value) -> SseEvent {
    SseEvent::default()
        .event(kind.as_str())
        .data(data.to_string())
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/events",
    tag = "jobs",
    operation_id = "job_events",
    summary = "Server-Sent Events of a job's progress",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "`job_update` and `execution_update` events until the job ends", body = super::openapi::SseEvent, content_type = "text/event-stream"),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
    ),
)]
pub async fn stream(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before the first snapshot so nothing falls between the two.
    let rx = app.ctx.events.subscribe();
    let (first, done) = snapshot(&app, &id)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    let stream = updates(app, id, first, done, rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn updates(
    app: Arc<AppState>,
    id: String,
    first: Value,
    done: bool,
    rx: tokio::sync::broadcast::Receiver<crate::events::Event>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct St {
        app: Arc<AppState>,
        id: String,
        rx: tokio::sync::broadcast::Receiver<crate::events::Event>,
        pending: Option<Value>,
    }
    let st = St {
        app,
        id,
        rx,
        pending: Some(first),
    };
    futures_util::stream::unfold((st, done), |(mut st, mut done)| async move {
        if let Some(v) = st.pending.take() {
            return Some((Ok(sse(EventKind::JobUpdate, &v)), (st, done)));
        }
        if done {
            return None;
        }
        loop {
            tokio::select! {
                _ = st.app.closing.cancelled() => return None,
                msg = st.rx.recv() => match msg {
                    Ok(ev) if ev.job_id == st.id => {
                        if ev.kind == EventKind::JobUpdate {
                            let terminal = ev.data.get("status").and_then(Value::as_str)
                                .and_then(beacon_core::status::JobStatus::parse)
                                .is_some_and(|s| s.is_terminal());
                            done = terminal;
                        }
                        return Some((Ok(sse(ev.kind, &ev.data)), (st, done)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: send a fresh snapshot instead.
                        if let Some((v, terminal)) = snapshot(&st.app, &st.id).await {
                            return Some((Ok(sse(EventKind::JobUpdate, &v)), (st, terminal)));
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep(SNAPSHOT_EVERY) => {
                    if let Some((v, terminal)) = snapshot(&st.app, &st.id).await {
                        return Some((Ok(sse(EventKind::JobUpdate, &v)), (st, terminal)));
                    }
                }
            }
        }
    })
}
