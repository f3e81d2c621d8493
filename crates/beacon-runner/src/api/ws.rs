//! `GET /ws` (also `/api/v1/ws`): live job and execution updates over a WebSocket, for
//! the portal's `useWs` (portal-contract.md 5). Fed by the same in-process events as the
//! Server-Sent Events route; see docs/runner.md "WebSocket" for the frames.
//!
//! Each text message is exactly one compact JSON object, with no newline inside or
//! after it: it parses whether a client reads a message as one JSON document or splits
//! it on `\n` first (the contract says "newline-delimited JSON objects").

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::AppState;
use crate::error::ApiError;
use crate::events::{Event, EventKind};
use crate::views;

/// How often the server pings; a client silent for two intervals (browsers answer
/// pings by themselves) is taken for gone.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client that cannot take one frame in this long is dropped: it would otherwise
/// hold a task (and its lagging receiver) open indefinitely.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// With `job_id`, how often the job is re-read, for changes another runner instance
/// made (they are not in this process's events). Sent only when it changed.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Clients have nothing to say; anything large is refused by the protocol layer.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// `/ws` at the root (the portal's default: same origin, path `/ws`) and under the API.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/api/v1/ws", get(upgrade_api))
}

/// The handshake: the origin check, the optional `job_id` filter (404 for an unknown
/// job, like the SSE route), then the session on its own task.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "jobs",
    operation_id = "websocket",
    summary = "Live job updates over a WebSocket (the portal's default path)",
    params(
        ("job_id" = Option<String>, Query, description = "Only this job"),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = crate::error::ErrorBody),
        (status = 403, description = "ORIGIN_NOT_ALLOWED: a page origin outside CORS_ORIGINS", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
        (status = 426, description = "UPGRADE_REQUIRED: the connection cannot be upgraded", body = crate::error::ErrorBody),
    ),
)]
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        if !origin_allowed(origin, host, &app.config.cors_origins) {
            return Ok(refuse_origin(origin));
        }
    }
    let job = q
        .get("job_id")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    // Subscribe before the first snapshot so nothing falls between the two.
    let rx = app.ctx.events.subscribe();
    let first = match &job {
        Some(id) => Some(
            snapshot(&app, id)
                .await
                .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?,
        ),
        None => None,
    };
    // The session holds the state weakly: when the runner shuts down and drops it, the
    // event channel closes and the session ends (it is not one of the connections the
    // graceful shutdown waits for, so it must not keep anything alive either).
    let weak = Arc::downgrade(&app);
    let closing = app.closing.clone();
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(socket, weak, rx, job, first, closing)))
}

/// `/api/v1/ws`: the same handshake.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "jobs",
    operation_id = "websocket_api",
    summary = "Live job updates over a WebSocket",
    params(
        ("job_id" = Option<String>, Query, description = "Only this job"),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = crate::error::ErrorBody),
        (status = 403, description = "ORIGIN_NOT_ALLOWED: a page origin outside CORS_ORIGINS", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job", body = crate::error::ErrorBody),
        (status = 426, description = "UPGRADE_REQUIRED: the connection cannot be upgraded", body = crate::error::ErrorBody),
    ),
)]
pub async fn upgrade_api(
    state: State<Arc<AppState>>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    upgrade(state, q, headers, ws).await
}

/// Browsers send `Origin` on every WebSocket handshake, and CORS does not protect a
/// WebSocket: the server must check. Allowed: the CORS allowlist (`CORS_ORIGINS`;
/// `*` = any), and the runner's own origin (a page it served, `Origin` host equal to
/// `Host`). Requests without `Origin` (servers, the CLI) are not from a browser page.
fn origin_allowed(origin: &str, host: Option<&str>, allowlist: &[String]) -> bool {
    if allowlist.iter().any(|o| {
        let o = o.trim();
        o == "*" || o == origin
    }) {
        return true;
    }
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h.trim()))
}

fn refuse_origin(origin: &str) -> Response {
    ApiError::OriginNotAllowed(origin.to_string()).into_response()
}

async fn snapshot(app: &AppState, id: &str) -> Option<Value> {
    let job = app.ctx.store.get_job(id).await.ok()??;
    let counts = app.ctx.store.counts(id).await.ok()?;
    Some(views::job(&job, &counts, false))
}

fn job_frame(job_id: &str, job: Value) -> Value {
    json!({"type": EventKind::JobUpdate.as_str(), "job_id": job_id, "job": job})
}

fn event_frame(ev: Event) -> Value {
    match ev.kind {
        EventKind::JobUpdate => job_frame(&ev.job_id, ev.data),
        EventKind::ExecutionUpdate => json!({
            "type": EventKind::ExecutionUpdate.as_str(),
            "job_id": ev.job_id,
            "execution": ev.data,
        }),
    }
}

/// What the next event means for this client.
#[derive(Debug)]
enum Next {
    Event(Event),
    /// The client fell this many events behind the hub's buffer.
    Lagged(u64),
    /// The runner is shutting down (the event hub is gone).
    Closed,
}

/// Waits for the next event this client wants. Cancel-safe (it only awaits the
/// receiver), so the session can race it against the socket and its timers.
async fn next_event(rx: &mut Receiver<Event>, job: Option<&str>) -> Next {
    loop {
        match rx.recv().await {
            Ok(ev) if job.is_none_or(|j| j == ev.job_id) => return Next::Event(ev),
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => return Next::Lagged(missed),
            Err(RecvError::Closed) => return Next::Closed,
        }
    }
}

/// A client that fell behind the hub's buffer (it reads slower than events come)
/// loses the oldest events rather than slowing anyone down, and is told so:
/// `{"type":"lagged","missed":N}`, followed, when it watches one job, by a fresh
/// `job_update` of that job, so even a client that ignores `lagged` (the portal)
/// refetches.
async fn lagged_frames(missed: u64, job: Option<&str>, app: &Weak<AppState>) -> Vec<Value> {
    let mut frames = vec![match job {
        Some(id) => json!({"type": "lagged", "missed": missed, "job_id": id}),
        None => json!({"type": "lagged", "missed": missed}),
    }];
    if let (Some(id), Some(app)) = (job, app.upgrade()) {
        if let Some(v) = snapshot(&app, id).await {
            frames.push(job_frame(id, v));
        }
    }
    frames
}

/// Sends one message within [`SEND_TIMEOUT`]; `false` means the client is gone.
async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn send_json(socket: &mut WebSocket, frame: &Value) -> bool {
    send(socket, Message::Text(frame.to_string().into())).await
}

async fn session(
    mut socket: WebSocket,
    app: Weak<AppState>,
    mut rx: Receiver<Event>,
    job: Option<String>,
    first: Option<Value>,
    closing: tokio_util::sync::CancellationToken,
) {
    let job = job.as_deref();
    // The job as last sent, so periodic snapshots only go out when something changed.
    let mut last_job: Option<Value> = None;
    if let (Some(id), Some(v)) = (job, first) {
        if !send_json(&mut socket, &job_frame(id, v.clone())).await {
            return;
        }
        last_job = Some(v);
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut resync = tokio::time::interval_at(Instant::now() + SNAPSHOT_EVERY, SNAPSHOT_EVERY);
    let mut last_heard = Instant::now();
    let bye = || CloseFrame {
        code: close_code::AWAY,
        reason: "runner shutting down".into(),
    };
    loop {
        tokio::select! {
            // The server is shutting down: say so and end (the graceful shutdown
            // waits for every open connection).
            _ = closing.cancelled() => {
                let _ = send(&mut socket, Message::Close(Some(bye()))).await;
                return;
            }
            next = next_event(&mut rx, job) => {
                let frames = match next {
                    Next::Event(ev) => vec![event_frame(ev)],
                    Next::Lagged(missed) => lagged_frames(missed, job, &app).await,
                    Next::Closed => {
                        let _ = send(&mut socket, Message::Close(Some(bye()))).await;
                        return;
                    }
                };
                for frame in frames {
                    if frame["type"] == EventKind::JobUpdate.as_str() {
                        last_job = Some(frame["job"].clone());
                    }
                    if !send_json(&mut socket, &frame).await {
                        return;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                // Gone, or a protocol error (e.g. a message over the size limit).
                None | Some(Err(_)) => return,
                // Pongs, pings (answered by the protocol layer), a close (its reply is
                // flushed by the next read, which then ends the stream) and any text
                // (clients have nothing to say yet) all count as signs of life.
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > 2 * PING_EVERY {
                    return;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
            },
            _ = resync.tick(), if job.is_some() => {
                let (Some(id), Some(app)) = (job, app.upgrade()) else { continue };
                let current = snapshot(&app, id).await;
                drop(app);
                if let Some(v) = current.filter(|v| last_job.as_ref() != Some(v)) {
                    last_job = Some(v.clone());
                    if !send_json(&mut socket, &job_frame(id, v)).await {
                        return;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast;

    fn ev(job: &str, kind: EventKind, n: u64) -> Event {
        Event {
            job_id: job.into(),
            kind,
            data: json!({"n": n}),
        }
    }

    #[test]
    fn origins_follow_the_allowlist_and_the_runner_s_own_host() {
        let list = vec!["https://portal.example.org".to_string()];
        assert!(origin_allowed("https://portal.example.org", None, &list));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("runner:8080"),
            &list
        ));
        assert!(origin_allowed(
            "http://runner:8080",
            Some("runner:8080"),
            &list
        ));
        assert!(!origin_allowed(
            "http://runner:8081",
            Some("runner:8080"),
            &list
        ));
        assert!(origin_allowed("https://anyone", None, &["*".to_string()]));
        assert!(!origin_allowed("null", Some("runner"), &[]));
    }

    #[tokio::test]
    async fn events_are_filtered_by_job_and_a_lagging_client_is_told_how_much_it_missed() {
        let (tx, mut rx) = broadcast::channel(2);
        tx.send(ev("a", EventKind::JobUpdate, 1)).unwrap();
        tx.send(ev("b", EventKind::ExecutionUpdate, 2)).unwrap();
        let Next::Event(e) = next_event(&mut rx, Some("b")).await else {
            panic!("an event expected")
        };
        assert_eq!(
            event_frame(e),
            json!({"type": "execution_update", "job_id": "b", "execution": {"n": 2}})
        );
        for n in 0..5 {
            tx.send(ev("a", EventKind::JobUpdate, n)).unwrap();
        }
        assert!(matches!(next_event(&mut rx, None).await, Next::Lagged(3)));
        assert_eq!(
            lagged_frames(3, None, &Weak::new()).await,
            vec![json!({"type": "lagged", "missed": 3})]
        );
        assert_eq!(
            lagged_frames(3, Some("a"), &Weak::new()).await,
            vec![json!({"type": "lagged", "missed": 3, "job_id": "a"})]
        );
        let Next::Event(e) = next_event(&mut rx, None).await else {
            panic!("an event expected")
        };
        assert_eq!(
            event_frame(e),
            json!({"type": "job_update", "job_id": "a", "job": {"n": 3}})
        );
        drop(tx);
        assert!(matches!(next_event(&mut rx, None).await, Next::Event(_)));
        assert!(matches!(next_event(&mut rx, None).await, Next::Closed));
    }
}
