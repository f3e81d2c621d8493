//! Hangs, client cancellation, 303 redirects with reloadable result URLs, orphaned
//! redirected calls and shutdown, over real HTTP.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use beacon_sim::{Faults, Outcome, Phase, SimConfig};
use common::*;
use serde_json::Value;

#[tokio::test]
async fn a_client_that_gives_up_on_a_hang_is_recorded_promptly() {
    let sim = start(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = ask(&c, &sim, "mistral-7b", "Will you ever answer?")
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let gave_up = Instant::now();
    let probe = client();
    let call = eventually(
        Duration::from_secs(1),
        "call recorded as cancelled_by_client",
        || async {
            let stats = http_stats(&probe, &sim).await;
            stats
                .calls
                .first()
                .filter(|c| c.outcome == Outcome::CancelledByClient)
                .cloned()
        },
    )
    .await;
    assert!(gave_up.elapsed() < Duration::from_secs(1));
    assert!(call.ended_at.is_some());
    assert_eq!(call.http_status, None);
    let stats = sim.stats();
    assert_eq!(
        (stats.cancelled_by_client, stats.in_flight, stats.queued),
        (1, 0, 0)
    );
    sim.shutdown().await;
}

fn slow_redirecting() -> SimConfig {
    SimConfig {
        faults: Faults {
            latency_ms: 300,
            redirect_after_ms: 100,
            ..Faults::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_slow_call_answers_303_and_the_result_url_gives_the_same_call() {
    let sim = start(slow_redirecting()).await;
    let c = no_redirects();
    let r = ask(&c, &sim, "llama3.2-1b", "Explain tides").await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/?__result=1");
    // Follow by hand; the result URL itself may redirect again while the call runs.
    let mut hops = 0;
    let body: Value = loop {
        let r = c
            .get(format!("{}{location}", sim.url()))
            .send()
            .await
            .unwrap();
        if r.status() == 303 {
            assert_eq!(r.headers()["location"], location.as_str());
            hops += 1;
            assert!(hops < 10);
            continue;
        }
        assert_eq!(r.status(), 200);
        break r.json().await.unwrap();
    };
    assert_eq!(body["success"], true);
    // Reloading a finished result gives the same answer without new work.
    let again: Value = c
        .get(format!("{}{location}", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, body);
    let stats = sim.stats();
    assert_eq!(stats.started, 1, "one call, however many requests");
    assert_eq!(stats.calls[0].outcome, Outcome::Ok);
    assert!(stats.calls[0].redirects >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_default_client_follows_the_303_to_the_answer() {
    let sim = start(slow_redirecting()).await;
    let (status, body) = ask_json(&client(), &sim, "llama3.2-1b", "Explain tides").await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert!(!body["response"].as_str().unwrap().is_empty());
    assert_eq!(sim.stats().started, 1);
    assert_eq!(sim.stats().outcomes(), [Outcome::Ok]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_redirected_call_nobody_waits_for_is_cancelled_after_the_grace() {
    let sim = start(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            redirect_after_ms: 50,
            ..Faults::default()
        },
        orphan_grace: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let c = no_redirects();
    let r = ask(&c, &sim, "llama3.2-1b", "hang please").await.unwrap();
    assert_eq!(r.status(), 303);
    let location = format!("{}{}", sim.url(), r.headers()["location"].to_str().unwrap());
    // Still running: the redirect did not end it.
    assert_eq!(sim.stats().calls[0].outcome, Outcome::Running);
    // A waiter that comes back within the grace keeps it alive and is redirected again.
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(sim.stats().calls[0].outcome, Outcome::Running);
    let left = Instant::now();
    eventually(
        Duration::from_secs(2),
        "orphaned call cancelled",
        || async { (sim.stats().calls[0].outcome == Outcome::CancelledByClient).then_some(()) },
    )
    .await;
    assert!(
        left.elapsed() >= Duration::from_millis(150),
        "not before the grace"
    );
    let r = c.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 410, "a cancelled call has no result to give");
    assert_eq!(sim.stats().started, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_cancels_calls_in_flight_and_waits_for_them() {
    let sim = start(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let url = sim.url();
    let pending = tokio::spawn({
        let c = c.clone();
        async move {
            c.post(format!("{url}/"))
                .json(&modal_body("mistral-7b", "x"))
                .send()
                .await
        }
    });
    eventually(Duration::from_secs(2), "call in flight", || async {
        (sim.stats().in_flight == 1).then_some(())
    })
    .await;
    let t = Instant::now();
    sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let stats = sim.stats();
    assert_eq!(stats.outcomes(), [Outcome::CancelledByShutdown]);
    assert_eq!(stats.calls[0].phase, Phase::Ended);
    let answer = pending.await.unwrap();
    if let Ok(r) = answer {
        assert_eq!(r.status(), 503);
    }
    assert!(
        c.get(format!("{}/health", sim.url())).send().await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_client_giving_up_while_queued_frees_its_place() {
    let sim = start(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            max_concurrency: Some(1),
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let holder = tokio::spawn({
        let (c, url) = (client(), sim.url());
        async move {
            c.post(format!("{url}/"))
                .json(&modal_body("mistral-7b", "holds the slot"))
                .send()
                .await
        }
    });
    eventually(Duration::from_secs(2), "slot taken", || async {
        (sim.stats().in_flight == 1).then_some(())
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(
        ask(&impatient, &sim, "mistral-7b", "waits in the queue")
            .await
            .is_err()
    );
    let s = eventually(Duration::from_secs(1), "queued call cancelled", || async {
        let s = sim.stats();
        (s.calls.len() == 2 && s.calls[1].outcome == Outcome::CancelledByClient).then_some(s)
    })
    .await;
    assert_eq!((s.in_flight, s.queued, s.cancelled_by_client), (1, 0, 1));
    assert_eq!(
        s.calls[0].outcome,
        Outcome::Running,
        "the call being served is untouched"
    );
    holder.abort();
    sim.shutdown().await;
}
