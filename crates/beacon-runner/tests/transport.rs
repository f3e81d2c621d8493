//! Issue 11, items 6 and 9, against the runner: hostile clients over raw sockets
//! (a head that never ends, a body that never ends, idle keep-alive, 1,100 idle
//! connections, connections and WebSockets over `max_connections`) are cut by the serve loop's
//! timeouts and cap; and every transport-level error (405, 408, 413, 414, 431, `%FF` in
//! a path, a bad query, 429) is JSON with an `error_code`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use beacon_service::testing::{self, request, send};
use common::*;

/// Fast timeouts: a hostile client is cut within a second or two.
const FAST_SERVER: &str =
    "[server]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n";

async fn stack(backend: Backend, server: &str) -> Option<Stack> {
    Stack::start(
        backend,
        Opts {
            scheduler: "enabled = false".into(),
            regions: vec!["eu-west"],
            runner_tables: server.into(),
            ..Opts::default()
        },
    )
    .await
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

backend_test!(
    slow_heads_slow_bodies_and_idle_connections_are_cut_and_nothing_is_stored,
    |backend| async move {
        let Some(stack) = stack(backend, FAST_SERVER).await else {
            return;
        };
        let runner = addr(&stack.runner.url);
        testing::slow_headers_are_cut(runner, Duration::from_secs(3)).await;
        let r = testing::slow_body(runner, "/api/v1/jobs", Duration::from_secs(3)).await;
        r.assert_error(408, "REQUEST_TIMEOUT");
        let r =
            testing::slow_body(runner, "/api/v1/jobs/cross-region", Duration::from_secs(3)).await;
        r.assert_error(408, "REQUEST_TIMEOUT");
        testing::idle_keep_alive_is_closed(runner, Duration::from_secs(4)).await;
        let totals = stack.runner_totals().await;
        assert_eq!((totals.jobs, totals.executions, totals.nonces), (0, 0, 0));
        stack.shutdown().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_leave_livez_answering_and_are_closed() {
    testing::raise_fd_limit();
    let Some(stack) = stack(Backend::Sqlite, FAST_SERVER).await else {
        return;
    };
    let runner = addr(&stack.runner.url);
    let mut idle = testing::idle_connections(runner, 1_100).await;
    let r = testing::livez_within(runner, Duration::from_secs(1)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // header_read_timeout (1 s) frees every one of them.
    for s in &mut idle {
        testing::closed_within(s, Duration::from_secs(4)).await;
    }
    let r = testing::livez_within(runner, Duration::from_secs(1)).await;
    assert_eq!(r.status, 200, "{r:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_until_some_close() {
    // A long head timeout so the held connections stay open until dropped.
    let server = "[server]\nheader_read_timeout = \"30s\"\nmax_connections = 4\n";
    let Some(stack) = stack(Backend::Sqlite, server).await else {
        return;
    };
    let runner = addr(&stack.runner.url);
    let held = testing::idle_connections(runner, 4).await;
    let r = request(runner, "GET", "/livez", "").await;
    r.assert_error(503, "TOO_MANY_CONNECTIONS");
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("1"));
    drop(held);
    eventually(Duration::from_secs(3), "/livez answers again", || async {
        (request(runner, "GET", "/livez", "").await.status == 200).then_some(())
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_count_against_the_cap() {
    // An upgraded connection leaves hyper but keeps its descriptor: it must keep its slot.
    let server = "[server]\nheader_read_timeout = \"30s\"\nmax_connections = 2\n";
    let Some(stack) = stack(Backend::Sqlite, server).await else {
        return;
    };
    let runner = addr(&stack.runner.url);
    let url = format!("ws://{runner}/ws");
    let (first, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let (second, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    request(runner, "GET", "/livez", "")
        .await
        .assert_error(503, "TOO_MANY_CONNECTIONS");
    drop(first);
    eventually(
        Duration::from_secs(3),
        "a slot freed by the closed WebSocket",
        || async { (request(runner, "GET", "/livez", "").await.status == 200).then_some(()) },
    )
    .await;
    drop(second);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_error_is_json_with_a_code() {
    let Some(stack) = stack(Backend::Sqlite, "").await else {
        return;
    };
    let runner = addr(&stack.runner.url);
    // Over the transport limit (2 MiB): refused before the handler reads it.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 << 20));
    let resp = stack
        .http
        .post(format!("{}/api/v1/jobs", stack.runner.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error_code"], "PAYLOAD_TOO_LARGE", "{v}");

    let r = request(runner, "GET", "/api/v1/jobs/some-job/cancel", "").await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert!(r.headers.contains_key("allow"), "{r:?}");
    let r = request(runner, "DELETE", "/livez", "").await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    // A POST without a JSON type to a GET-only route is a 405 and to no route a 404:
    // the JSON rule runs only where a route and its method matched.
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    send(runner, post("/api/v1/health").as_bytes())
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
    send(runner, post("/api/v1/no-such-route").as_bytes())
        .await
        .assert_error(404, "NOT_FOUND");
    // On a POST route the type is still checked.
    send(runner, post("/api/v1/jobs").as_bytes())
        .await
        .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");

    // ~70 KB: past hyper's own limit (an empty 414 there), refused before hyper.
    let long = format!("/api/v1/jobs/{}", "a".repeat(70_000));
    request(runner, "GET", &long, "")
        .await
        .assert_error(414, "URI_TOO_LONG");
    // Under hyper's limit but over max_uri_bytes (8 KiB): refused by the service.
    let long = format!("/api/v1/jobs?status={}", "a".repeat(20_000));
    request(runner, "GET", &long, "")
        .await
        .assert_error(414, "URI_TOO_LONG");
    // A head of 100 KB of headers.
    let head = format!(
        "GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100_000)
    );
    send(runner, head.as_bytes())
        .await
        .assert_error(431, "HEADERS_TOO_LARGE");

    for path in [
        "/api/v1/jobs/%FF",
        "/api/v1/executions/%FF%FE/receipt",
        "/api/v2/jobs/%C3%28/bias-analysis",
    ] {
        let r = request(runner, "GET", path, "").await;
        r.assert_error(400, "INVALID_PATH");
        // The runner's shape: details and request_id as on every other error.
        assert!(r.json()["request_id"].is_string(), "{r:?}");
    }
    request(runner, "GET", "/api/v1/jobs?limit=many", "")
        .await
        .assert_error(400, "INVALID_QUERY");
    request(runner, "GET", "/api/v1/nowhere", "")
        .await
        .assert_error(404, "NOT_FOUND");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_submissions_say_when_to_retry() {
    let Some(stack) = stack(Backend::Sqlite, "").await else {
        return;
    };
    let mut config = runner_config(&stack.db.url, &stack.router.url, "enabled = false");
    config.submissions_per_minute = 1;
    let runner = beacon_runner::start(config).await.unwrap();
    let at = addr(&runner.url);
    let first = request(at, "POST", "/api/v1/jobs", "{}").await;
    assert_ne!(first.status, 429, "{first:?}");
    let r = request(at, "POST", "/api/v1/jobs", "{}").await;
    r.assert_error(429, "RATE_LIMITED");
    let after: u64 = r.headers["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&after), "{r:?}");
    assert_eq!(r.json()["retry_after"], after);
    runner.shutdown().await;
    stack.shutdown().await;
}
