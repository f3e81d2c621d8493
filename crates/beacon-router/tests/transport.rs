//! Issue 11, items 6 and 9, against the router: hostile clients over raw sockets
//! (a head that never ends, a body that never ends, idle keep-alive, 1,100 idle
//! connections, connections over `max_connections`) are cut by the serve loop's
//! timeouts and cap; every transport-level error is JSON with an `error_code`, in the
//! route's own shape (`/inference` its failure object, the rest `{error, error_code}`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_router::RouterHandle;
use beacon_service::testing::{self, request, send};
use beacon_sim::{Faults, SimHandle};
use common::*;

/// Fast timeouts: a hostile client is cut within a second or two.
const FAST_SERVER: &str =
    "[server]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n";

async fn start(server: &str) -> (RouterHandle, SimHandle) {
    let eu = sim("eu-west", Faults::default()).await;
    // Transport behaviour, not authentication: inference is open here so the raw
    // clients reach the body reader (tests/auth.rs covers the token).
    let r = router_with(
        &format!(
            "auth.allow_unauthenticated = true\n{FAST_HEALTH}{server}\n{}",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[],
    )
    .await;
    (r, eu)
}

#[tokio::test]
async fn slow_heads_slow_bodies_and_idle_connections_are_cut() {
    let (r, eu) = start(FAST_SERVER).await;
    testing::slow_headers_are_cut(r.addr, Duration::from_secs(3)).await;
    // /inference answers in its own failure shape (with `error_code`).
    let resp = testing::slow_body(r.addr, "/inference", Duration::from_secs(3)).await;
    resp.assert_error(408, "REQUEST_TIMEOUT");
    assert_eq!(resp.json()["success"], false, "{resp:?}");
    testing::idle_keep_alive_is_closed(r.addr, Duration::from_secs(4)).await;
    // The stalled request never reached a provider.
    assert!(live_calls(&eu).is_empty());
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_leave_livez_answering_and_are_closed() {
    testing::raise_fd_limit();
    let (r, _eu) = start(FAST_SERVER).await;
    let mut idle = testing::idle_connections(r.addr, 1_100).await;
    let resp = testing::livez_within(r.addr, Duration::from_secs(1)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    for s in &mut idle {
        testing::closed_within(s, Duration::from_secs(4)).await;
    }
    let resp = testing::livez_within(r.addr, Duration::from_secs(1)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    r.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_until_some_close() {
    let (r, _eu) = start("[server]\nheader_read_timeout = \"30s\"\nmax_connections = 4\n").await;
    let held = testing::idle_connections(r.addr, 4).await;
    let resp = request(r.addr, "GET", "/livez", "").await;
    resp.assert_error(503, "TOO_MANY_CONNECTIONS");
    assert_eq!(
        resp.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    drop(held);
    eventually(Duration::from_secs(3), "/livez answers again", || async {
        (request(r.addr, "GET", "/livez", "").await.status == 200).then_some(())
    })
    .await;
    r.shutdown().await;
}

#[tokio::test]
async fn every_transport_error_is_json_with_a_code() {
    let (r, _eu) = start("[limits]\nmax_request_bytes = 10000\n").await;
    let a = r.addr;
    // Over max_request_bytes: /inference keeps its failure shape.
    let big = format!("{{\"prompt\": \"{}\"}}", "x".repeat(20_000));
    let resp = request(a, "POST", "/inference", &big).await;
    resp.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(resp.json()["success"], false);

    let resp = request(a, "GET", "/inference", "").await;
    resp.assert_error(405, "METHOD_NOT_ALLOWED");
    assert!(resp.headers.contains_key("allow"), "{resp:?}");
    request(a, "POST", "/providers", "{}")
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");

    let long = format!("/providers/{}", "a".repeat(70_000));
    request(a, "GET", &long, "")
        .await
        .assert_error(414, "URI_TOO_LONG");
    let long = format!("/providers?region={}", "a".repeat(20_000));
    request(a, "GET", &long, "")
        .await
        .assert_error(414, "URI_TOO_LONG");
    let head = format!(
        "GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100_000)
    );
    send(a, head.as_bytes())
        .await
        .assert_error(431, "HEADERS_TOO_LARGE");

    for path in [
        "/admin/providers/%FF/probe",
        "/admin/providers/%C3%28/drain",
    ] {
        request(a, "POST", path, "")
            .await
            .assert_error(400, "INVALID_PATH");
    }
    request(a, "GET", "/providers?region=%FF", "")
        .await
        .assert_error(400, "UNKNOWN_REGION");
    request(a, "GET", "/nowhere", "")
        .await
        .assert_error(404, "NOT_FOUND");
    r.shutdown().await;
}
