//! `/ws` with a real WebSocket client (tokio-tungstenite): a real job's `job_update`
//! and `execution_update` frames arrive with the right `job_id`, ending with the job
//! terminal; `job_id=` filters; browser origins follow the CORS allowlist; and an open
//! socket neither delays the runner's shutdown nor outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::Faults;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(stack: &Stack, path: &str) -> String {
    format!("{}{path}", stack.runner.url.replacen("http://", "ws://", 1))
}

async fn connect(
    url: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next JSON frame (pings and pongs skipped); `None` when the socket closed.
async fn next_frame(ws: &mut Ws, limit: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(limit, ws.next())
            .await
            .expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(text))) => {
                assert!(
                    !text.contains('\n'),
                    "one compact JSON object per message: {text}"
                );
                return Some(serde_json::from_str(&text).unwrap());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
        }
    }
}

fn is_terminal(frame: &Value) -> bool {
    frame["type"] == "job_update"
        && ["completed", "failed", "cancelled"]
            .contains(&frame["job"]["status"].as_str().unwrap_or(""))
}

/// Frames until `job_id`'s job_update says it is terminal.
async fn frames_until_terminal(ws: &mut Ws, job_id: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let frame = next_frame(ws, Duration::from_secs(30))
            .await
            .expect("the socket stays open");
        let done = frame["job_id"] == job_id && is_terminal(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
    panic!("job {job_id} never reported terminal: {frames:?}");
}

fn slow() -> Opts {
    // Calls take long enough that the sockets see the job move.
    let faults = Faults {
        latency_ms: 150,
        ..Faults::default()
    };
    Opts {
        faults: REGIONS.iter().map(|r| (*r, faults.clone())).collect(),
        ..Opts::default()
    }
}

backend_test!(
    a_real_job_streams_job_and_execution_updates,
    |backend| async move {
        let Some(stack) = Stack::start(backend, slow()).await else {
            return;
        };
        // The portal's way: same-origin path `/ws`, no filter, connected before submitting.
        let mut all = connect(&ws_url(&stack, "/ws"), None).await.unwrap();
        let spec = stack.spec(
            "ws-job-1",
            &["math_basic", "identity_basic"],
            &["llama3.2-1b"],
            &["US", "EU"],
            json!({}),
        );
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 202, "{body}");
        // A second client, under the API prefix, watching this job only; and another job
        // it must not hear about.
        let mut one = connect(&ws_url(&stack, "/api/v1/ws?job_id=ws-job-1"), None)
            .await
            .unwrap();
        let other = stack.spec(
            "ws-job-2",
            &["math_basic"],
            &["mistral-7b"],
            &["EU"],
            json!({}),
        );
        assert_eq!(stack.submit(&other).await.0, 202);

        let frames = frames_until_terminal(&mut all, "ws-job-1").await;
        let mine: Vec<&Value> = frames
            .iter()
            .filter(|f| f["job_id"] == "ws-job-1")
            .collect();
        let executions: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|f| f["type"] == "execution_update")
            .collect();
        assert!(!executions.is_empty(), "{frames:?}");
        for f in &executions {
            assert_eq!(f["execution"]["job_id"], "ws-job-1", "{f}");
            assert!(
                f["execution"]["id"].is_string() || f["execution"]["id"].is_number(),
                "{f}"
            );
        }
        assert!(
            executions
                .iter()
                .any(|f| f["execution"]["status"] == "completed"),
            "{executions:?}"
        );
        let jobs: Vec<&Value> = mine
            .iter()
            .copied()
            .filter(|f| f["type"] == "job_update")
            .collect();
        for f in &jobs {
            assert_eq!(f["job"]["id"], "ws-job-1", "{f}");
        }
        // The same job JSON the SSE stream and GET /jobs/{id} show.
        let last = jobs.last().unwrap();
        assert_eq!(last["job"]["status"], "completed", "{last}");
        let (_, job) = stack.get("/api/v1/jobs/ws-job-1").await;
        assert_eq!(last["job"]["status"], job["status"]);

        let filtered = frames_until_terminal(&mut one, "ws-job-1").await;
        assert!(
            filtered.iter().all(|f| f["job_id"] == "ws-job-1"),
            "job_id= filters: {filtered:?}"
        );
        assert_eq!(filtered[0]["type"], "job_update", "a snapshot comes first");

        // Clients close politely; the runner carries on.
        all.close(None).await.unwrap();
        one.close(None).await.unwrap();
        stack
            .wait_terminal("ws-job-2", Duration::from_secs(30))
            .await;
        stack.shutdown().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_follow_the_cors_allowlist_and_unknown_jobs_are_404() {
    let stack = Stack::start(Backend::Sqlite, Opts::default())
        .await
        .unwrap();
    let url = ws_url(&stack, "/ws");
    // No Origin (a server, the CLI), a default development origin, the runner's own.
    connect(&url, None).await.unwrap();
    connect(&url, Some("http://localhost:5173")).await.unwrap();
    let own = stack.runner.url.clone();
    connect(&url, Some(&own)).await.unwrap();
    // A page elsewhere is refused at the handshake, with the runner's error shape.
    match connect(&url, Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error_code"], "ORIGIN_NOT_ALLOWED", "{body}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    match connect(&ws_url(&stack, "/ws?job_id=nope"), None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_neither_delays_shutdown_nor_outlives_it() {
    let Stack {
        sims,
        router,
        runner,
        db,
        ..
    } = Stack::start(Backend::Sqlite, Opts::default())
        .await
        .unwrap();
    let url = format!("{}/ws", runner.url.replacen("http://", "ws://", 1));
    let mut idle = connect(&url, None).await.unwrap();
    // Answer pings and prove the socket is live before the shutdown.
    idle.send(Message::Ping(vec![1].into())).await.unwrap();
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), runner.shutdown())
        .await
        .expect("the runner shuts down promptly with a websocket open");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session ends with the runner: a close frame saying why, then the end.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match idle.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    })
    .await
    .expect("the socket closes when the runner stops");
    let frame = closed.expect("a close frame, not a dropped connection");
    assert_eq!(frame.code, CloseCode::Away, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "runner shutting down");
    router.shutdown().await;
    for (_, s) in sims {
        s.shutdown().await;
    }
    drop(db);
}
