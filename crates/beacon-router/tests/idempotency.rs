//! The `Idempotency-Key` cache is bounded by bytes and expires on time (issue 11, item
//! 4): many unique keys with large answers keep its bytes within `[idempotency]
//! max_bytes` (the oldest go first), and an entry is gone after its `ttl` without any
//! count cap being reached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::Faults;
use common::*;

/// A gauge of the router's `/metrics`.
async fn gauge(router: &beacon_router::RouterHandle, name: &str) -> f64 {
    let text = http()
        .get(format!("{}/metrics", router.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

async fn ask_with_key(r: &beacon_router::RouterHandle, prompt: &str, key: &str) -> (u16, bool) {
    let resp = http()
        .post(format!("{}/inference", r.url))
        .header("Idempotency-Key", key)
        .json(&ask("llama3.2-1b", "eu-west", prompt))
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (resp.status().as_u16(), replayed)
}

#[tokio::test]
async fn large_answers_under_unique_keys_stay_within_max_bytes() {
    const ANSWER: u64 = 20_000;
    const MAX: f64 = 100_000.0;
    let eu = sim(
        "eu-west",
        Faults {
            oversize_bytes: ANSWER,
            ..Faults::default()
        },
    )
    .await;
    let r = router_with(
        &format!(
            "{FAST_HEALTH}{}[idempotency]\nmax_bytes = {MAX}\n",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[],
    )
    .await;
    for i in 0..15 {
        let (status, replayed) =
            ask_with_key(&r, &format!("Question {i}"), &format!("exec-{i}:1")).await;
        assert_eq!((status, replayed), (200, false));
        let bytes = gauge(&r, "beacon_router_idempotency_cache_bytes").await;
        assert!(bytes <= MAX, "after {i}: {bytes} bytes held, bound {MAX}");
    }
    let entries = gauge(&r, "beacon_router_idempotency_cache_entries").await;
    let bytes = gauge(&r, "beacon_router_idempotency_cache_bytes").await;
    // Each entry weighs at least its answer, so at most MAX / ANSWER of them are kept.
    assert!((1.0..=5.0).contains(&entries), "{entries} entries");
    assert!(
        bytes >= entries * ANSWER as f64,
        "{bytes} bytes for {entries} entries"
    );
    // The newest key still replays; the oldest was evicted, so its repeat is a new call.
    assert_eq!(
        ask_with_key(&r, "Question 14", "exec-14:1").await,
        (200, true)
    );
    let before = live_calls(&eu).len();
    assert_eq!(
        ask_with_key(&r, "Question 0", "exec-0:1").await,
        (200, false)
    );
    assert_eq!(live_calls(&eu).len(), before + 1);
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn an_entry_is_gone_after_its_ttl() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router_with(
        &format!(
            "{FAST_HEALTH}{}[idempotency]\nttl = \"300ms\"\n",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[],
    )
    .await;
    assert_eq!(
        ask_with_key(&r, "Keep me briefly.", "exec-1:1").await,
        (200, false)
    );
    assert_eq!(
        ask_with_key(&r, "Keep me briefly.", "exec-1:1").await,
        (200, true)
    );
    assert_eq!(
        gauge(&r, "beacon_router_idempotency_cache_entries").await,
        1.0
    );
    // One entry, far below any count bound: it goes because its time is up.
    eventually(Duration::from_secs(5), "the entry to expire", || async {
        let n = gauge(&r, "beacon_router_idempotency_cache_entries").await;
        let b = gauge(&r, "beacon_router_idempotency_cache_bytes").await;
        (n == 0.0 && b == 0.0).then_some(())
    })
    .await;
    let before = live_calls(&eu).len();
    assert_eq!(
        ask_with_key(&r, "Keep me briefly.", "exec-1:1").await,
        (200, false)
    );
    assert_eq!(
        live_calls(&eu).len(),
        before + 1,
        "an expired key is a new call"
    );
    r.shutdown().await;
    eu.shutdown().await;
}
