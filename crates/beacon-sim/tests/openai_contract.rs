//! The OpenAI chat-completions contract over real HTTP: completion shape, OpenAI-shaped
//! errors, and the same faults as the Modal route.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_core::Region;
use beacon_sim::{Faults, Outcome, ProviderKind, Route, SimConfig};
use common::*;
use serde_json::{Value, json};

fn chat(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0,
        "max_tokens": 200,
    })
}

#[tokio::test]
async fn completion_has_the_openai_shape() {
    let sim = start(SimConfig {
        region: Region::eu_west(),
        kind: ProviderKind::Openai,
        ..Default::default()
    })
    .await;
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&chat("qwen2.5-1.5b", "Describe volcanoes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "qwen2.5-1.5b");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_i64().unwrap() > 1_600_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("volcanoes"),
        "prompt is the last user message: {content}"
    );
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 5);
    assert_eq!(body["provenance"]["provider"], "beacon-sim");

    // The path without /v1 works too (routers append /chat/completions to their URL).
    let r = c
        .post(format!("{}/chat/completions", sim.url()))
        .json(&chat("qwen2.5-1.5b", "Describe volcanoes"))
        .send()
        .await
        .unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        again["choices"][0]["message"]["content"], content,
        "temperature 0 is stable"
    );

    // max_tokens cuts the answer, and says so.
    let mut short = chat("qwen2.5-1.5b", "Describe volcanoes");
    short["max_tokens"] = json!(3);
    let body: Value = c
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&short)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let stats = sim.stats();
    assert_eq!(stats.calls[0].route, Route::Openai);
    assert_eq!(stats.calls[1].occurrence, 1);
    assert_eq!(
        stats.calls[0].prompt_sha256,
        beacon_sim::draw::sha256_hex("Describe volcanoes")
    );
    // Unknown paths answer in the native contract of the kind.
    let r = c
        .get(format!("{}/v1/nothing", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_url"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_have_the_openai_shape() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let url = format!("{}/v1/chat/completions", sim.url());

    let r = c
        .post(&url)
        .json(&chat("gpt-9", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("gpt-9"));

    let r = c
        .post(&url)
        .json(&json!({"model": "mistral-7b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "messages");

    let r = c.post(&url).body("][").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );

    assert_eq!(
        sim.stats().outcomes(),
        [
            Outcome::UnknownModel,
            Outcome::ValidationError,
            Outcome::ValidationError
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_the_openai_route() {
    let sim = start(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let url = format!("{}/v1/chat/completions", sim.url());
    for i in 0..8 {
        let r = c
            .post(&url)
            .json(&chat("mistral-7b", &format!("q{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        let text = r.text().await.unwrap();
        let outcome = sim.stats().calls[i].outcome;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => {
                assert_eq!(outcome, Outcome::ReportedFailure);
                assert_eq!(v["error"]["type"], "server_error");
            }
            Err(_) => assert_eq!(outcome, Outcome::Http500),
        }
    }
    sim.set_faults(serde_json::from_value(json!({"error_rate": 0, "empty_rate": 1})).unwrap())
        .unwrap();
    let body: Value = c
        .post(&url)
        .json(&chat("mistral-7b", "q"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "");
    assert_eq!(body["usage"]["completion_tokens"], 0);
    sim.shutdown().await;
}
