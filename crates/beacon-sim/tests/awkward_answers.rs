//! Answers that test what a client does with them: U+0000 inside the text (`nul_rate`),
//! padded answers of any size streamed at little cost (`oversize_bytes`), and the hash
//! of every answer served (`response_sha256`), so a client can prove it kept the exact
//! text.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use beacon_sim::draw::sha256_hex;
use beacon_sim::{CallRecord, Faults, Outcome, SimConfig, SimHandle};
use common::*;
use serde_json::{Value, json};

fn with_faults(faults: Faults) -> SimConfig {
    SimConfig::default().with_faults(faults).with_seed(5)
}

fn last_call(sim: &SimHandle) -> CallRecord {
    sim.stats().calls.pop().expect("a call was recorded")
}

async fn openai_ask(c: &reqwest::Client, sim: &SimHandle, prompt: &str) -> Value {
    c.post(format!("{}/v1/chat/completions", sim.url()))
        .json(&json!({"model": "mistral-7b", "temperature": 0,
                      "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_answer_served_is_hashed_and_failures_are_not() {
    let sim = start(with_faults(Faults::default())).await;
    let c = client();
    let (_, body) = ask_json(&c, &sim, "mistral-7b", "What is the capital of France?").await;
    let text = body["response"].as_str().unwrap();
    let call = last_call(&sim);
    assert_eq!(call.response_sha256.as_deref(), Some(&*sha256_hex(text)));
    assert_eq!(call.response_bytes, Some(text.len() as u64));
    assert!(!call.hung_up_mid_body);

    let body = openai_ask(&c, &sim, "Name a river.").await;
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        last_call(&sim).response_sha256,
        Some(sha256_hex(text)),
        "the OpenAI route too"
    );

    sim.set_faults(serde_json::from_value(json!({"empty_rate": 1.0})).unwrap())
        .unwrap();
    ask_json(&c, &sim, "mistral-7b", "Say nothing.").await;
    let call = last_call(&sim);
    assert_eq!(call.outcome, Outcome::Empty);
    assert_eq!(
        call.response_sha256,
        Some(sha256_hex("")),
        "an empty answer"
    );

    sim.set_faults(serde_json::from_value(json!({"error_rate": 1.0})).unwrap())
        .unwrap();
    ask_json(&c, &sim, "mistral-7b", "Fail, please.").await;
    let call = http_stats(&c, &sim).await.calls.pop().unwrap();
    assert!(matches!(
        call.outcome,
        Outcome::ReportedFailure | Outcome::Http500
    ));
    assert_eq!((call.response_sha256, call.response_bytes), (None, None));
    sim.shutdown().await;
}

#[tokio::test]
async fn nul_rate_puts_one_nul_in_the_middle_of_answers_reproducibly() {
    let faults = Faults {
        nul_rate: 0.5,
        ..Faults::default()
    };
    let (a, b) = (
        start(with_faults(faults.clone())).await,
        start(with_faults(faults)).await,
    );
    let c = client();
    let mut with_nul = 0;
    for i in 0..12 {
        let prompt = format!("Tell me about rivers, part {i}.");
        let raw = ask(&c, &a, "llama3.2-1b", &prompt)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let body: Value = serde_json::from_str(&raw).unwrap();
        let text = body["response"].as_str().unwrap();
        let (_, twin) = ask_json(&c, &b, "llama3.2-1b", &prompt).await;
        assert_eq!(twin["response"], text, "same seed, same answer");
        assert_eq!(last_call(&a).response_sha256, Some(sha256_hex(text)));
        match text.matches('\u{0}').count() {
            0 => {}
            1 => {
                with_nul += 1;
                assert!(raw.contains("\\u0000"), "escaped in the JSON");
                let at = text.find('\u{0}').unwrap();
                assert!(at > 0 && at < text.len() - 1, "inside the text: {text:?}");
                assert_eq!(body["receipt"]["output"]["response"], text);
            }
            n => panic!("{n} NULs in {text:?}"),
        }
    }
    assert!(
        (1..12).contains(&with_nul),
        "a rate of 0.5 gives some: {with_nul}"
    );

    // Empty answers stay empty: NUL only shapes answers that have text.
    let empty = start(with_faults(Faults {
        nul_rate: 1.0,
        empty_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let (_, body) = ask_json(&c, &empty, "llama3.2-1b", "Anything?").await;
    assert_eq!(body["response"], "");
    for s in [a, b, empty] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn oversize_answers_are_padded_streamed_with_a_length_and_hashed() {
    const SIZE: u64 = 3_000_000;
    let plain = start(with_faults(Faults::default())).await;
    let big = start(with_faults(Faults {
        oversize_bytes: SIZE,
        ..Faults::default()
    }))
    .await;
    let c = client();
    let (_, unpadded) = ask_json(&c, &plain, "qwen2.5-1.5b", "Why is the sky blue?").await;
    let unpadded = unpadded["response"].as_str().unwrap();

    let resp = ask(&c, &big, "qwen2.5-1.5b", "Why is the sky blue?")
        .await
        .unwrap();
    let declared = resp
        .content_length()
        .expect("a Content-Length, like Modal's");
    let raw = resp.bytes().await.unwrap();
    assert_eq!(raw.len() as u64, declared);
    let body: Value = serde_json::from_slice(&raw).unwrap();
    let text = body["response"].as_str().unwrap();
    assert_eq!(text.len() as u64, SIZE);
    assert!(text.starts_with(unpadded), "the real answer comes first");
    assert!(text.ends_with(" padding") || text.contains(" padding padding"));
    assert_eq!(body["receipt"]["output"]["response"], text);
    assert!(body["tokens_generated"].as_u64().unwrap() > SIZE / 10);
    let call = last_call(&big);
    assert_eq!(call.outcome, Outcome::Ok);
    assert_eq!(call.response_bytes, Some(SIZE));
    assert_eq!(call.response_sha256, Some(sha256_hex(text)));
    assert!(!call.hung_up_mid_body);

    let body = openai_ask(&c, &big, "Why is the grass green?").await;
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.len() as u64, SIZE, "the OpenAI route too");
    assert_eq!(last_call(&big).response_sha256, Some(sha256_hex(text)));

    // An answer already longer than the knob is left alone.
    big.set_faults(serde_json::from_value(json!({"oversize_bytes": 10})).unwrap())
        .unwrap();
    let (_, body) = ask_json(&c, &big, "qwen2.5-1.5b", "Why is the sky blue?").await;
    assert_eq!(body["response"], unpadded);
    plain.shutdown().await;
    big.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_a_huge_answer_is_recorded_hanging_up() {
    const SIZE: u64 = 200_000_000;
    let sim = start(with_faults(Faults {
        oversize_bytes: SIZE,
        ..Faults::default()
    }))
    .await;
    let started = Instant::now();
    let mut resp = ask(&client(), &sim, "mistral-7b", "Tell me everything.")
        .await
        .unwrap();
    assert!(resp.content_length().unwrap() > 2 * SIZE, "two copies");
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"{"));
    drop(resp);
    let call = eventually(Duration::from_secs(10), "the hang-up is recorded", || {
        let call = last_call(&sim);
        async move { call.hung_up_mid_body.then_some(call) }
    })
    .await;
    assert_eq!(call.outcome, Outcome::Ok, "the answer was given");
    assert_eq!(call.response_bytes, Some(SIZE));
    assert_eq!(call.response_sha256, None, "never written whole");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_new_knobs_are_validated_and_patchable_over_http() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let url = format!("{}/__sim/faults", sim.url());
    for patch in [
        json!({"oversize_bytes": 1_073_741_825_u64}),
        json!({"nul_rate": 1.5}),
    ] {
        let r = c.post(&url).json(&patch).send().await.unwrap();
        assert_eq!(r.status(), 400, "{patch}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_code"], "FAULT_OUT_OF_RANGE", "{body}");
    }
    let r = c
        .post(&url)
        .json(&json!({"oversize_bytes": 1000, "nul_rate": 0.25}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let now: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (now["oversize_bytes"].as_u64(), now["nul_rate"].as_f64()),
        (Some(1000), Some(0.25))
    );
    sim.shutdown().await;
}
