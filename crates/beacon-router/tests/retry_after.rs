//! `NO_HEALTHY_PROVIDER` says when to come back: `failure.retry_after` (seconds) and a
//! `Retry-After` header give the time until the earliest ejection ends, each candidate
//! shows its `ejected_until`, and a client that waits that long gets an answer once the
//! provider is fixed. When no end is known (a drained provider), nothing is promised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::{FaultPatch, Faults};
use common::*;
use serde_json::{Value, json};

/// POST /inference; returns status, `Retry-After` header and body.
async fn infer_raw(r: &beacon_router::RouterHandle, body: Value) -> (u16, Option<String>, Value) {
    let resp = http()
        .post(format!("{}/inference", r.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, resp.json().await.unwrap())
}

const HEALTH: &str = "[health]\nprobe_interval = \"30s\"\nprobe_timeout = \"2s\"\nunhealthy_after = 3\neject_base = \"1500ms\"\neject_max = \"3s\"\n";

#[tokio::test]
async fn an_ejected_provider_says_when_to_retry_and_is_back_by_then() {
    let eu = sim(
        "eu-west",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let r = router_with(
        &format!("{HEALTH}{}", provider("sim-eu-west", "eu-west", &eu, "")),
        &[],
    )
    .await;
    let question = ask("llama3.2-1b", "eu-west", "Tell me about Lyon.");
    // Provider 404s until unhealthy_after is reached (the boot probe may count too).
    let mut refused = None;
    for _ in 0..5 {
        let (status, retry, body) = infer_raw(&r, question.clone()).await;
        if status == 503 {
            refused = Some((retry, body));
            break;
        }
        assert_eq!(status, 502, "{body}");
        assert!(retry.is_none(), "a provider failure promises nothing");
    }
    let (header, body) = refused.expect("ejected after 3 failures");
    assert_eq!(body["error_code"], "NO_HEALTHY_PROVIDER", "{body}");
    let retry_after = body["failure"]["retry_after"].as_f64().unwrap();
    assert!(
        retry_after > 0.5 && retry_after <= 1.5,
        "about eject_base (1.5 s): {retry_after}"
    );
    assert_eq!(
        header.as_deref(),
        Some(&*(retry_after.ceil() as u64).to_string()),
        "whole seconds, rounded up"
    );
    let candidate = &body["candidates"][0];
    let until = candidate["ejected_until"].as_str().unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let left = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    assert!((0..=1_500).contains(&left), "{left} ms");

    // The OpenAI front door sends the same header.
    let v1 = http()
        .post(format!("{}/v1/chat/completions", r.url))
        .header("X-Beacon-Region", "eu-west")
        .json(&json!({"model": "llama3.2-1b", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status().as_u16(), 503);
    assert!(v1.headers().get("retry-after").is_some());
    let v1: Value = v1.json().await.unwrap();
    assert_eq!(v1["error"]["code"], "NO_HEALTHY_PROVIDER");

    // Fixed meanwhile; a client that honours retry_after gets an answer. Waiting is
    // the behaviour under test here, so this sleeps exactly as long as it was told.
    eu.set_faults(FaultPatch {
        inference_broken: Some(false),
        ..FaultPatch::default()
    })
    .unwrap();
    let mut wait = retry_after;
    let mut answered = false;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let (status, _, body) = infer_raw(&r, question.clone()).await;
        if status == 200 {
            answered = true;
            break;
        }
        // Only a trial already re-testing the provider may still hold us back.
        assert_eq!(status, 503, "{body}");
        let reason = body["candidates"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("trial"), "{reason}");
        assert_eq!(body["failure"]["retry_after"], 1.0, "{body}");
        wait = 1.0;
    }
    assert!(answered, "the provider is back after the ejection");
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn a_drained_provider_has_no_known_end_so_no_retry_after() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router_with(
        &format!(
            "admin_token_env = \"ADMIN\"\n{FAST_HEALTH}{}",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[("ADMIN", "t0ken")],
    )
    .await;
    let drained = http()
        .post(format!("{}/admin/providers/sim-eu-west/drain", r.url))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status().as_u16(), 200);
    let (status, header, body) = infer_raw(&r, ask("llama3.2-1b", "eu-west", "Hello?")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "NO_HEALTHY_PROVIDER");
    assert!(body["failure"].get("retry_after").is_none(), "{body}");
    assert!(header.is_none());
    assert!(body["candidates"][0].get("ejected_until").is_none());
    r.shutdown().await;
    eu.shutdown().await;
}
