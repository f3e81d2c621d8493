//! The Modal contract over real HTTP: answer shape, validation answers, broken routes and
//! the per-call faults (errors, empty, malformed, dropped connections).

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use beacon_core::Region;
use beacon_sim::{FaultKind, Faults, Outcome, SimConfig};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn success_has_the_modal_shape_and_is_labelled_simulated() {
    let sim = start(SimConfig {
        region: Region::asia_pacific(),
        label: Some("asia-southeast".into()),
        ..Default::default()
    })
    .await;
    let c = client();
    let (status, body) = ask_json(&c, &sim, "mistral-7b", "Why is the sky blue?").await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["model"], "mistral-7b");
    assert_eq!(body["region"], "asia-southeast");
    let text = body["response"].as_str().unwrap();
    assert!(text.len() > 40, "{text}");
    assert!(body["tokens_generated"].as_u64().unwrap() > 5);
    assert!(body["inference_time"].is_number());
    let receipt = &body["receipt"];
    assert_eq!(receipt["schema_version"], "v0.1.0");
    assert_eq!(receipt["provenance"]["provider"], "beacon-sim");
    assert_eq!(
        receipt["execution_details"]["provider_id"],
        "beacon-sim-asia-pacific"
    );
    assert_eq!(receipt["execution_details"]["region"], "asia-southeast");
    assert_eq!(receipt["output"]["prompt"], "Why is the sky blue?");
    assert_eq!(receipt["output"]["response"], text);

    let stats = sim.stats();
    assert_eq!((stats.started, stats.completed, stats.failed), (1, 1, 0));
    let call = &stats.calls[0];
    assert_eq!(call.outcome, Outcome::Ok);
    assert_eq!(call.http_status, Some(200));
    assert_eq!(call.model, "mistral-7b");
    assert_eq!(
        call.prompt_sha256,
        beacon_sim::draw::sha256_hex("Why is the sky blue?")
    );
    assert!(call.ended_at.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_errors_use_modals_own_shapes() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let url = format!("{}/", sim.url());

    let r = c
        .post(&url)
        .json(&json!({"model": "mistral-7b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "error", "error": "Prompt is required"})
    );

    let r = c
        .post(&url)
        .json(&json!({"model": "gpt-9", "prompt": "hi", "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "error", "error": "Unknown model: gpt-9"})
    );
    assert!(body.get("success").is_none());

    let r = c.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let outcomes = sim.stats().outcomes();
    assert_eq!(
        outcomes,
        [
            Outcome::ValidationError,
            Outcome::UnknownModel,
            Outcome::ValidationError
        ]
    );
    assert_eq!(sim.stats().failed, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn broken_health_url_does_not_stop_inference() {
    let sim = start(SimConfig {
        faults: Faults {
            health_broken: true,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let r = c.get(format!("{}/health", sim.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("modal-http: invalid function call")
    );
    let (status, body) = ask_json(&c, &sim, "llama3.2-1b", "What is a prime number?").await;
    assert_eq!((status, body["success"].as_bool()), (200, Some(true)));
    sim.shutdown().await;
}

#[tokio::test]
async fn broken_inference_with_a_healthy_health_url() {
    let sim = start(SimConfig {
        faults: Faults {
            inference_broken: true,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let r = c.get(format!("{}/health", sim.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "healthy");
    let r = ask(&c, &sim, "llama3.2-1b", "hello").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "modal-http: invalid function call");
    let r = c
        .post(format!("{}/v1/chat/completions", sim.url()))
        .json(&json!({"model": "llama3.2-1b", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let stats = sim.stats();
    assert_eq!(
        stats.outcomes(),
        [Outcome::InferenceBroken, Outcome::InferenceBroken]
    );
    assert_eq!(
        stats.calls[0].prompt_sha256,
        beacon_sim::draw::sha256_hex("hello")
    );
    assert_eq!(stats.calls[0].traceparent, None, "sent without one");
    sim.shutdown().await;
}

/// The call log keeps the `traceparent` each call arrived with, refused or served.
#[tokio::test]
async fn the_call_log_records_the_traceparent_received() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = c
        .post(sim.url())
        .header("traceparent", tp)
        .json(&json!({"model": "llama3.2-1b", "prompt": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(sim.url())
        .header("traceparent", tp)
        .json(&json!({"model": "no-such-model", "prompt": "hello"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status() == 200);
    let stats = sim.stats();
    assert_eq!(stats.calls.len(), 2);
    for call in &stats.calls {
        assert_eq!(call.traceparent.as_deref(), Some(tp), "{call:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn error_faults_answer_either_reported_failure_or_http_500_as_recorded() {
    let sim = start(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let c = client();
    let mut seen = Vec::new();
    for i in 0..16 {
        let r = ask(&c, &sim, "qwen2.5-1.5b", &format!("question {i}"))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        seen.push((status, text));
    }
    let stats = sim.stats();
    assert_eq!(stats.failed, 16);
    for (call, (status, text)) in stats.calls.iter().zip(&seen) {
        assert_eq!(call.fault, FaultKind::Error);
        assert_eq!(call.http_status, Some(*status));
        match call.outcome {
            Outcome::ReportedFailure => {
                let body: Value = serde_json::from_str(text).unwrap();
                assert_eq!(body["success"], false);
                assert!(body["error"].as_str().unwrap().contains("simulated"));
                assert_eq!(*status, 200);
            }
            Outcome::Http500 => assert_eq!(*status, 500),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let outcomes = stats.outcomes();
    assert!(
        outcomes.contains(&Outcome::ReportedFailure) && outcomes.contains(&Outcome::Http500),
        "{outcomes:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_fault_is_a_success_with_an_empty_answer() {
    let sim = start(SimConfig {
        faults: Faults {
            empty_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let (status, body) = ask_json(&client(), &sim, "mistral-7b", "Tell me about rivers").await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["response"], "");
    assert_eq!(body["tokens_generated"], 0);
    assert_eq!(sim.stats().outcomes(), [Outcome::Empty]);
    assert_eq!(sim.stats().completed, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_fault_is_json_content_type_with_a_body_that_does_not_parse() {
    let sim = start(SimConfig {
        faults: Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let r = ask(&client(), &sim, "mistral-7b", "Tell me about rivers")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    assert!(text.starts_with('{'), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(sim.stats().outcomes(), [Outcome::Malformed]);
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_single_byte() {
    let sim = start(SimConfig {
        faults: Faults {
            drop_rate: 1.0,
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    // reqwest sees a transport error, not a status.
    let err = ask(&client(), &sim, "mistral-7b", "first")
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");

    // A raw socket proves nothing at all was written before the close.
    let addr = sim.addr();
    let received = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = r#"{"model":"mistral-7b","prompt":"second"}"#;
        write!(
            s,
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    let stats = sim.stats();
    assert_eq!(stats.outcomes(), [Outcome::Dropped, Outcome::Dropped]);
    assert_eq!(stats.calls[0].http_status, None);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_result_ids_are_404() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let r = c.get(format!("{}/nope", sim.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "modal-http: invalid function call");
    let r = c
        .get(format!("{}/?__result=999", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        sim.stats().started,
        0,
        "a result lookup never starts a call"
    );
    sim.shutdown().await;
}
