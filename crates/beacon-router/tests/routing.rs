//! Acceptance 4-10: empty answers, Modal's 303, failover inside a region and region
//! strictness, per-provider concurrency, caller disconnects, idempotency, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use beacon_sim::{Faults, Outcome};
use common::*;
use serde_json::json;

#[tokio::test]
async fn an_empty_answer_is_a_success_with_a_warning() {
    let us = sim(
        "us-east",
        Faults {
            empty_rate: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("sim-us-east", "us-east", &us, "")]).await;
    let (status, body) = infer(&r, ask("mistral-7b", "US", "Say something.")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["response"], "");
    assert_eq!(body["warnings"], json!(["EMPTY_MODEL_RESPONSE"]));
    assert!(body["failure"].is_null());
    r.shutdown().await;
    us.shutdown().await;
}

#[tokio::test]
async fn a_long_call_is_followed_through_the_303() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 400,
            redirect_after_ms: 100,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let (status, body) = infer(&r, ask("llama3.2-1b", "eu-west", "A slow question.")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["response"].as_str().unwrap().is_empty());
    let calls = live_calls(&eu);
    assert_eq!(
        calls.len(),
        1,
        "the redirect started no new work: {calls:?}"
    );
    assert!(
        calls[0].redirects >= 1,
        "the call was redirected: {calls:?}"
    );
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn failover_stays_inside_the_region_unless_fallback_is_allowed() {
    let eu_bad = sim(
        "eu-west",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let eu_good = sim("eu-west", Faults::default()).await;
    let us_bad = sim(
        "us-east",
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[
        provider("eu-bad", "eu-west", &eu_bad, "cost_per_second = 0.0"),
        provider("eu-good", "eu-west", &eu_good, "cost_per_second = 0.001"),
        provider("us-bad", "us-east", &us_bad, ""),
    ])
    .await;
    for i in 0..6 {
        let (status, body) = infer(&r, ask("qwen2.5-1.5b", "EU", &format!("question {i}"))).await;
        assert_eq!(status, 200, "eu-west keeps answering: {body}");
        assert_eq!(body["provider_used"], "eu-good");
        assert_eq!(body["metadata"]["region"], "eu-west");
    }
    let eu_calls = live_calls(&eu_good).len();
    let (status, body) = infer(&r, ask("qwen2.5-1.5b", "us-east", "strict question")).await;
    assert!(
        status >= 500,
        "us-east fails rather than leave its region: {body}"
    );
    assert_eq!(
        live_calls(&eu_good).len(),
        eu_calls,
        "no us-east request reached eu-west"
    );
    assert_eq!(body["failure"]["region"], "us-east");

    let mut fallback = ask("qwen2.5-1.5b", "us-east", "fallback question");
    fallback["allow_region_fallback"] = json!(true);
    let (status, body) = infer(&r, fallback).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["region"], "eu-west",
        "the answer says where it came from"
    );
    r.shutdown().await;
    for s in [eu_bad, eu_good, us_bad] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn max_concurrency_holds_and_long_queue_waits_are_overloaded() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 250,
            ..Faults::default()
        },
    )
    .await;
    let r = Arc::new(
        router(&[provider(
            "sim-eu-west",
            "eu-west",
            &eu,
            "max_concurrency = 2\nqueue_timeout = \"5s\"",
        )])
        .await,
    );
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak, eu_url) = (done.clone(), peak.clone(), eu.url());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let (_, s) = get_json(format!("{eu_url}/__sim/stats?limit=0")).await;
                peak.fetch_max(s["in_flight"].as_u64().unwrap(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut calls = Vec::new();
    for i in 0..6 {
        let r = r.clone();
        calls.push(tokio::spawn(async move {
            infer(&r, ask("mistral-7b", "eu-west", &format!("c{i}"))).await
        }));
    }
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak <= 2, "simulator saw {peak} calls at once");
    assert!(peak >= 1);
    eu.shutdown().await;

    // A wait longer than queue_timeout is OVERLOADED.
    let slow = sim(
        "eu-west",
        Faults {
            latency_ms: 1500,
            ..Faults::default()
        },
    )
    .await;
    let r2 = Arc::new(
        router(&[provider(
            "sim-slow",
            "eu-west",
            &slow,
            "max_concurrency = 1\nqueue_timeout = \"100ms\"",
        )])
        .await,
    );
    // The boot probe is a real inference and holds the only slot; let it finish.
    eventually(Duration::from_secs(5), "first probe done", || async {
        (provider_entry(&r2, "sim-slow").await["state"] == "healthy").then_some(())
    })
    .await;
    let first = {
        let r2 = r2.clone();
        tokio::spawn(async move { infer(&r2, ask("mistral-7b", "eu-west", "first")).await })
    };
    eventually(Duration::from_secs(3), "first call in flight", || async {
        (provider_entry(&r2, "sim-slow").await["in_flight"] == 1).then_some(())
    })
    .await;
    let (status, body) = infer(&r2, ask("mistral-7b", "eu-west", "second")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "OVERLOADED");
    assert_eq!(first.await.unwrap().0, 200);
    slow.shutdown().await;
}

#[tokio::test]
async fn a_caller_that_disconnects_cancels_the_upstream_call() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 10_000,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let res = client
        .post(format!("{}/inference", r.url))
        .bearer_auth(TOKEN)
        .json(&ask("llama3.2-1b", "eu-west", "I will not wait for this."))
        .send()
        .await;
    assert!(res.is_err(), "the client gave up");
    let call = eventually(Duration::from_secs(2), "cancelled_by_client", || async {
        live_calls(&eu)
            .into_iter()
            .find(|c| c.outcome == Outcome::CancelledByClient)
    })
    .await;
    assert!(call.ended_at.is_some());
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn the_same_idempotency_key_twice_calls_upstream_once() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 50,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let body = ask("llama3.2-1b", "eu-west", "Once only, please.");
    let key = [("Idempotency-Key", "attempt-42")];
    let (s1, a1) = infer_with(&r, body.clone(), &key).await;
    let (s2, a2) = infer_with(&r, body.clone(), &key).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a1["response"], a2["response"]);
    assert_eq!(live_calls(&eu).len(), 1, "one upstream call for one key");
    // The same key for another request is a conflict, not a silent wrong answer.
    let (s3, a3) = infer_with(&r, ask("llama3.2-1b", "eu-west", "Something else"), &key).await;
    assert_eq!(
        (s3, a3["error_code"].as_str()),
        (409, Some("IDEMPOTENCY_KEY_CONFLICT"))
    );
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let (status, body) = infer(&r, ask("llama3.2-1b", "Mars", "hi")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("UNKNOWN_REGION")),
        "{body}"
    );
    let (status, body) = infer(&r, ask("llama3.2-1b", "us-east", "hi")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("UNKNOWN_REGION")),
        "a region with no provider: {body}"
    );
    let (status, body) = infer(&r, ask("gpt-9", "eu-west", "hi")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("NO_PROVIDER_FOR_MODEL")),
        "{body}"
    );
    let resp = http()
        .post(format!("{}/inference", r.url))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_REQUEST");
    assert_eq!(body["failure"]["stage"], "validation");
    let (status, body) = infer(
        &r,
        json!({"model": "llama3.2-1b", "prompt": " ", "region_preference": "eu-west"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(
        live_calls(&eu).is_empty(),
        "nothing bad reached the provider"
    );
    r.shutdown().await;
    eu.shutdown().await;
}

/// A caller's own tiny `timeout_ms` is the caller's business: it must not count as the
/// provider's failure, or any caller could eject a healthy provider for everyone.
#[tokio::test]
async fn a_callers_tiny_budget_does_not_eject_the_provider() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 300,
            ..Faults::default()
        },
    )
    .await;
    let router = router(&[provider("eu", "eu-west", &eu, "")]).await;
    let mut rushed = ask("llama3.2-1b", "eu-west", "hurry");
    rushed["timeout_ms"] = json!(20);
    for _ in 0..5 {
        let (status, body) = infer(&router, rushed.clone()).await;
        assert_eq!(status, 504, "{body}");
        assert_eq!(body["error_code"], "PROVIDER_TIMEOUT");
        assert!(
            body["error"].as_str().unwrap().contains("timeout_ms"),
            "{body}"
        );
    }
    let entry = provider_entry(&router, "eu").await;
    assert_eq!(entry["consecutive_failures"], 0, "{entry}");
    assert_ne!(entry["state"], "unhealthy", "{entry}");
    assert!(entry["last_failure"].is_null(), "{entry}");
    // A zero budget is refused before anything is sent.
    rushed["timeout_ms"] = json!(0);
    let (status, body) = infer(&router, rushed).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, body) = infer(&router, ask("llama3.2-1b", "eu-west", "no rush")).await;
    assert_eq!(status, 200, "{body}");
    router.shutdown().await;
    eu.shutdown().await;
}
