//! Queueing behind `max_concurrency` (also changed at run time) and cold starts, observed
//! through the stats while calls run.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use beacon_sim::{FaultPatch, Faults, Outcome, SimConfig};
use common::*;

#[tokio::test]
async fn calls_beyond_max_concurrency_queue_and_in_flight_never_exceeds_it() {
    let sim = start(SimConfig {
        faults: Faults {
            latency_ms: 100,
            max_concurrency: Some(2),
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let c = c.clone();
            let url = sim.url();
            tokio::spawn(async move {
                c.post(format!("{url}/"))
                    .json(&modal_body("mistral-7b", &format!("q{i}")))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let (mut max_in_flight, mut max_queued, mut samples) = (0, 0, 0);
    while calls.iter().any(|h| !h.is_finished()) {
        let s = http_stats(&c, &sim).await;
        max_in_flight = max_in_flight.max(s.in_flight);
        max_queued = max_queued.max(s.queued);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for h in calls {
        assert_eq!(h.await.unwrap().unwrap(), 200);
    }
    let elapsed = started.elapsed();
    assert!(samples > 5, "sampled {samples} times");
    assert!(max_in_flight <= 2, "in_flight reached {max_in_flight}");
    assert_eq!(max_in_flight, 2);
    assert!(max_queued > 0, "queueing was never observed");
    // Three waves of 100 ms.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    let s = sim.stats();
    assert_eq!((s.completed, s.in_flight, s.queued), (6, 0, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn raising_max_concurrency_at_run_time_admits_queued_calls() {
    let sim = start(SimConfig {
        faults: Faults {
            hang_rate: 1.0,
            max_concurrency: Some(1),
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let _calls: Vec<_> = (0..3)
        .map(|i| {
            let c = c.clone();
            let url = sim.url();
            tokio::spawn(async move {
                c.post(format!("{url}/"))
                    .json(&modal_body("mistral-7b", &format!("q{i}")))
                    .send()
                    .await
            })
        })
        .collect();
    eventually(Duration::from_secs(2), "1 in flight, 2 queued", || async {
        let s = sim.stats();
        (s.in_flight == 1 && s.queued == 2).then_some(())
    })
    .await;
    sim.set_faults(FaultPatch {
        max_concurrency: Some(None),
        ..FaultPatch::default()
    })
    .unwrap();
    eventually(Duration::from_secs(2), "all 3 in flight", || async {
        let s = sim.stats();
        (s.in_flight == 3 && s.queued == 0).then_some(())
    })
    .await;
    sim.shutdown().await;
    assert_eq!(sim.stats().cancelled_by_shutdown, 3);
}

#[tokio::test]
async fn the_first_call_and_calls_after_idling_pay_the_cold_start() {
    let sim = start(SimConfig {
        faults: Faults {
            cold_start_ms: 120,
            idle_after_ms: 150,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let timed = |prompt: &'static str| {
        let c = c.clone();
        let url = sim.url();
        async move {
            let t = Instant::now();
            let r = c
                .post(format!("{url}/"))
                .json(&modal_body("mistral-7b", prompt))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            t.elapsed()
        }
    };
    // Two concurrent first calls both wait for the one boot.
    let (a, b) = tokio::join!(timed("a"), timed("b"));
    assert!(
        a >= Duration::from_millis(120) && b >= Duration::from_millis(120),
        "{a:?} {b:?}"
    );
    assert!(
        a < Duration::from_millis(240) && b < Duration::from_millis(240),
        "one boot, not two: {a:?} {b:?}"
    );
    let warm = timed("c").await;
    assert!(warm < Duration::from_millis(120), "warm call took {warm:?}");
    // Idle longer than idle_after: the container scaled down, the next call is cold.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cold_again = timed("d").await;
    assert!(cold_again >= Duration::from_millis(120), "{cold_again:?}");
    let s = sim.stats();
    assert_eq!(
        s.calls.iter().map(|c| c.cold_start).collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert!(s.calls.iter().all(|c| c.outcome == Outcome::Ok));
    sim.shutdown().await;
}
