//! A router restart under a running job (the runner's breaker recovers by itself and
//! the job completes; health says `degraded` while the router is gone), and a cancel
//! answered by an API-only instance while another instance runs the job (no provider
//! call starts after the answer; the owner's calls close within a second). The
//! process-level versions (SIGKILL, SIGTERM) are drills in crates/beacon-drills.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::Faults;
use common::*;
use serde_json::json;

const Q3: [&str; 3] = ["math_basic", "tiananmen_neutral", "taiwan_status"];

/// A free port on 127.0.0.1 (bound, read, released).
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn start_router(stack: &Stack, port: u16) -> beacon_router::RouterHandle {
    let toml = router_toml(&stack.sims, &format!("127.0.0.1:{port}"), None);
    let cfg = beacon_router::Config::from_toml(&toml, &router_env).unwrap();
    beacon_router::start(cfg).await.unwrap()
}

/// Simulators answering after `latency_ms`, a router, and an API-only runner: the
/// test starts the runner under test itself.
async fn api_only_paced(backend: Backend, latency_ms: u64) -> Option<Stack> {
    let paced = Faults {
        latency_ms,
        ..Faults::default()
    };
    let faults = REGIONS.iter().map(|r| (*r, paced.clone())).collect();
    Stack::start(
        backend,
        Opts {
            faults,
            scheduler: "enabled = false".into(),
            ..Opts::default()
        },
    )
    .await
}

async fn health(http: &reqwest::Client, runner: &str) -> serde_json::Value {
    http.get(format!("{runner}/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

backend_test!(
    a_router_restart_pauses_the_job_and_the_breaker_recovers,
    |backend| async move {
        let Some(stack) = api_only_paced(backend, 150).await else {
            return;
        };
        // The runner under test calls a router of its own, on a port it keeps.
        let port = free_port().await;
        let router = start_router(&stack, port).await;
        let runner = beacon_runner::start(runner_config_with(
            &stack.db.url,
            &router.url,
            "max_concurrency_per_job = 6",
            "[breaker]\nfailure_threshold = 3\nopen_for = \"200ms\"\nmax_open_for = \"1s\"\n",
        ))
        .await
        .unwrap();
        let spec = stack.spec("job-restart", &Q3, &MODELS, &REGIONS, json!({}));
        assert_eq!(stack.submit(&spec).await.0, 202);
        eventually(Duration::from_secs(20), "some executions done", || async {
            let job = stack.job("job-restart").await;
            (job["progress"]["completed"].as_u64().unwrap_or(0) >= 6).then_some(())
        })
        .await;

        router.shutdown().await;
        let h = health(&stack.http, &runner.url).await;
        assert_eq!(h["status"], "degraded", "{h}");
        // Long enough for the breaker to open (connections refused) and stay open.
        eventually(Duration::from_secs(10), "the breaker opens", || async {
            let h = health(&stack.http, &runner.url).await;
            (h["services"][1]["breaker"] == "open").then_some(())
        })
        .await;

        let router = start_router(&stack, port).await;
        let job = stack
            .wait_terminal("job-restart", Duration::from_secs(60))
            .await;
        assert_eq!(job["status"], "completed", "{}", job["progress"]);
        for e in executions(&job) {
            assert_eq!(e["status"], "completed", "{e}");
        }
        let h = health(&stack.http, &runner.url).await;
        assert_eq!(h["status"], "healthy", "{h}");
        assert_eq!(h["services"][1]["breaker"], "closed", "{h}");
        // Calls refused at the router's door bought nothing; each answer was bought once.
        let calls = stack.all_live_calls().len();
        assert!((27..=27 + 6).contains(&calls), "{calls} provider calls");
        runner.shutdown().await;
        router.shutdown().await;
        stack.shutdown().await;
    }
);

/// A cancel answered by an instance that does not run the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_an_api_only_instance_stops_the_owner_at_once() {
    let slow = Faults {
        latency_ms: 1500,
        ..Faults::default()
    };
    let faults = REGIONS.iter().map(|r| (*r, slow.clone())).collect();
    // The stack's runner runs the job; the second one only serves the API. The
    // heartbeat is long, so only the signal can stop the owner in time.
    let Some(stack) = Stack::start(
        Backend::Postgres,
        Opts {
            faults,
            scheduler: "heartbeat = \"20s\"\nlease = \"60s\"\nmax_concurrency_per_job = 8".into(),
            ..Opts::default()
        },
    )
    .await
    else {
        return;
    };
    let api = stack.second_runner("enabled = false").await;
    let spec = stack.spec("job-remote-cancel", &Q3, &MODELS, &REGIONS, json!({}));
    assert_eq!(stack.submit(&spec).await.0, 202);
    eventually(Duration::from_secs(20), "calls in flight", || async {
        let busy: u64 = stack.sims.iter().map(|(_, s)| s.stats().in_flight).sum();
        (busy >= 6).then_some(())
    })
    .await;

    let asked = std::time::Instant::now();
    let resp = stack
        .http
        .post(format!("{}/api/v1/jobs/job-remote-cancel/cancel", api.url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let answered_at = chrono::Utc::now();
    let took = asked.elapsed();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["new_status"], "cancelled", "{body}");
    assert_eq!(body["calls_stopped"], true, "the owner confirmed: {body}");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");

    // Watch the simulators for a while longer: nothing new may start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = stack.all_live_calls();
    let after: Vec<_> = calls
        .iter()
        .filter(|c| c.started_at > answered_at)
        .collect();
    assert!(
        after.is_empty(),
        "calls started after the cancel answer: {after:?}"
    );
    for c in &calls {
        let ended = c.ended_at.expect("every call has ended");
        assert!(
            ended <= answered_at + chrono::Duration::seconds(1),
            "a call closed more than 1 s after the answer: {c:?}"
        );
    }
    eprintln!(
        "cancel through the API-only instance: answered in {took:?}, {} calls started before it, 0 after",
        calls.len()
    );
    api.shutdown().await;
    stack.shutdown().await;
}

// A short burst of provider failures gets eu-west's only provider ejected for longer
// than the runner's whole retry budget; the router says when the ejection ends
// (`retry_after`) and the executions wait for it instead of failing.
backend_test!(
    an_ejected_region_is_waited_for_not_given_up,
    |backend| async move {
        let Some(stack) = api_only_paced(backend, 50).await else {
            return;
        };
        // This router ejects for 2 s; the runner's retries (20-200 ms backoff, three
        // attempts) would all be spent inside that.
        let toml = router_toml(&stack.sims, "127.0.0.1:0", Some(2))
            .replace("eject_base = \"300ms\"", "eject_base = \"2s\"")
            .replace("eject_max = \"1s\"", "eject_max = \"4s\"");
        let router =
            beacon_router::start(beacon_router::Config::from_toml(&toml, &router_env).unwrap())
                .await
                .unwrap();
        let runner = beacon_runner::start(runner_config(
            &stack.db.url,
            &router.url,
            "max_concurrency_per_job = 6",
        ))
        .await
        .unwrap();
        let eu = stack.sim("eu-west");
        eu.set_faults(serde_json::from_value(json!({"error_rate": 1.0})).unwrap())
            .unwrap();
        let spec = stack.spec("job-burst", &Q3, &MODELS, &REGIONS, json!({}));
        assert_eq!(stack.submit(&spec).await.0, 202);
        // The burst lasts until the provider is ejected, then ends.
        eventually(Duration::from_secs(20), "eu-west ejected", || async {
            let p: serde_json::Value = stack
                .http
                .get(format!("{}/providers?region=eu-west", router.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (p["providers"][0]["state"] == "unhealthy").then_some(())
        })
        .await;
        eu.set_faults(serde_json::from_value(json!({"error_rate": 0.0})).unwrap())
            .unwrap();
        let job = stack
            .wait_terminal("job-burst", Duration::from_secs(60))
            .await;
        let mut waited = 0;
        for e in executions(&job) {
            assert_eq!(e["status"], "completed", "{e}");
            let (_, details) = stack
                .get(&format!(
                    "/api/v1/executions/{}/details",
                    e["id"].as_str().unwrap()
                ))
                .await;
            let history = details["attempt_history"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            waited += history
                .iter()
                .filter(|a| a["error_code"] == "NO_HEALTHY_PROVIDER")
                .count();
        }
        assert!(
            waited > 0,
            "some executions met the ejection and waited it out"
        );
        eprintln!(
            "ejected region: all 27 completed; {waited} attempts answered NO_HEALTHY_PROVIDER and waited"
        );
        runner.shutdown().await;
        router.shutdown().await;
        stack.shutdown().await;
    }
);

/// An open event stream on an unfinished job must not hold up a graceful shutdown (its
/// job's work is handed back, so the stream would otherwise never end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_up_a_shutdown() {
    let Some(stack) = api_only_paced(Backend::Sqlite, 2000).await else {
        return;
    };
    let runner = beacon_runner::start(runner_config(&stack.db.url, &stack.router.url, ""))
        .await
        .unwrap();
    let spec = stack.spec("job-sse-shutdown", &Q3, &MODELS, &REGIONS, json!({}));
    assert_eq!(stack.submit(&spec).await.0, 202);
    let mut events = stack
        .http
        .get(format!(
            "{}/api/v1/jobs/job-sse-shutdown/events",
            runner.url
        ))
        .send()
        .await
        .unwrap();
    // The first snapshot arrived: the stream is open.
    assert!(events.chunk().await.unwrap().is_some());
    let asked = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), runner.shutdown())
        .await
        .expect("the runner shut down with an event stream open");
    eprintln!(
        "shutdown with an open event stream took {:?}",
        asked.elapsed()
    );
    // The stream ended with the server.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
    stack.shutdown().await;
}
