//! Run-time fault changes through `/__sim/faults`, their validation, and the determinism
//! rule: same seed and requests ⇒ same faults and answers, whatever the interleaving.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use beacon_sim::{Faults, Outcome, SimConfig, SimHandle};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn faults_change_at_run_time_over_http() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let faults_url = format!("{}/__sim/faults", sim.url());

    let r = c
        .post(&faults_url)
        .json(&json!({"error_rate": 1.0, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_rate"], 1.0);
    assert_eq!(body["latency_ms"], 5);
    let current: Faults = c
        .get(&faults_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current.error_rate, 1.0);
    assert_eq!(
        current.redirect_after_ms, 150_000,
        "untouched knobs keep their value"
    );
    assert_eq!(sim.faults(), current);

    for i in 0..4 {
        let r = ask(&c, &sim, "mistral-7b", &format!("p{i}")).await.unwrap();
        let ok = r.status() == 200 && r.json::<Value>().await.unwrap()["success"] == true;
        assert!(!ok, "error_rate 1 must fail every call");
    }
    c.post(&faults_url)
        .json(&json!({"error_rate": 0}))
        .send()
        .await
        .unwrap();
    let (status, body) = ask_json(&c, &sim, "mistral-7b", "p0").await;
    assert_eq!((status, body["success"].as_bool()), (200, Some(true)));

    let stats = sim.stats();
    assert_eq!((stats.failed, stats.completed), (4, 1));
    // `since_id` returns only later calls; counters stay whole.
    let later: beacon_sim::SimStats = c
        .get(format!("{}/__sim/stats?since_id=3", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(later.calls.iter().map(|c| c.id).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(later.started, 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_fault_patches_are_refused_with_an_error_code() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let url = format!("{}/__sim/faults", sim.url());
    for (body, code, needle) in [
        (
            json!({"error_rate": 1.5}),
            "FAULT_OUT_OF_RANGE",
            "error_rate",
        ),
        (
            json!({"max_concurrency": 0}),
            "FAULT_OUT_OF_RANGE",
            "max_concurrency",
        ),
        (
            json!({"eror_rate": 0.1}),
            "INVALID_FAULT_PATCH",
            "eror_rate",
        ),
        (
            json!({"hang_rate": "lots"}),
            "INVALID_FAULT_PATCH",
            "invalid type",
        ),
    ] {
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error_code"], code, "{body}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{err}");
    }
    let r = c.post(&url).body("nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sim.faults(), Faults::default(), "nothing was applied");
    sim.shutdown().await;
}

fn half_failing(seed: u64) -> SimConfig {
    SimConfig {
        faults: Faults {
            error_rate: 0.5,
            empty_rate: 0.1,
            ..Faults::default()
        },
        seed,
        ..Default::default()
    }
}

/// 50 calls in sequence (10 prompts × 5 asks, so occurrences matter), temperature 0.7.
async fn run_sequence(sim: &SimHandle) -> Vec<(Outcome, u16, String)> {
    let c = client();
    let mut out = Vec::new();
    for round in 0..5 {
        for p in 0..10 {
            let model = ["llama3.2-1b", "mistral-7b"][(p + round) % 2];
            let r = c
                .post(format!("{}/", sim.url()))
                .json(&json!({"model": model, "prompt": format!("Question number {p} about oceans"), "temperature": 0.7}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            out.push((status, r.text().await.unwrap()));
        }
    }
    let outcomes = sim.stats().outcomes();
    outcomes
        .into_iter()
        .zip(out)
        .map(|(o, (s, body))| {
            // Timing fields differ between runs; compare the answer text only.
            let text = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("response")
                        .or(v.get("error"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or(body);
            (o, s, text)
        })
        .collect()
}

#[tokio::test]
async fn same_seed_same_faults_and_answers_other_seed_differs() {
    let a = start(half_failing(42)).await;
    let b = start(half_failing(42)).await;
    let other = start(half_failing(43)).await;
    let (ra, rb, ro) = tokio::join!(run_sequence(&a), run_sequence(&b), run_sequence(&other));
    assert_eq!(ra.len(), 50);
    assert_eq!(ra, rb);
    assert_ne!(ra, ro);
    let outcomes: std::collections::HashSet<Outcome> = ra.iter().map(|r| r.0).collect();
    assert!(
        outcomes.contains(&Outcome::Ok) && outcomes.len() >= 3,
        "{outcomes:?}"
    );
    // Repeats of one prompt get fresh draws: not all five asks of prompt 0 end alike.
    let first_prompt: Vec<_> = (0..5).map(|round| &ra[round * 10]).collect();
    assert!(
        first_prompt.iter().any(|r| *r != first_prompt[0]),
        "{first_prompt:?}"
    );
    for sim in [a, b, other] {
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn outcomes_do_not_depend_on_request_interleaving() {
    let seq = start(half_failing(7)).await;
    let par = start(half_failing(7)).await;
    let c = client();
    let prompts: Vec<String> = (0..20).map(|i| format!("distinct prompt {i}")).collect();
    for p in &prompts {
        ask(&c, &seq, "mistral-7b", p).await.unwrap();
    }
    let handles: Vec<_> = prompts
        .iter()
        .rev()
        .map(|p| {
            let (c, url, p) = (c.clone(), par.url(), p.clone());
            tokio::spawn(async move {
                c.post(format!("{url}/"))
                    .json(&modal_body("mistral-7b", &p))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let by_hash = |sim: &SimHandle| -> HashMap<String, Outcome> {
        sim.stats()
            .calls
            .into_iter()
            .map(|c| (c.prompt_sha256, c.outcome))
            .collect()
    };
    let (a, b) = (by_hash(&seq), by_hash(&par));
    assert_eq!(a.len(), 20);
    assert_eq!(a, b);
    seq.shutdown().await;
    par.shutdown().await;
}
