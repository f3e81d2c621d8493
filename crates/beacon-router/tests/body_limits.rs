//! Every body the router reads is bounded: a provider's 200 MB answer is refused unread
//! (`PROVIDER_RESPONSE_TOO_LARGE`) while one under the limit passes byte for byte; a
//! provider that never stops sending is cut at the limit; error bodies are only read for
//! a snippet; a client body over `max_request_bytes` is a 413.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use beacon_core::receipt::sha256_hex;
use beacon_sim::{CallRecord, Faults, SimHandle};
use common::*;
use futures_util::stream;
use serde_json::{Value, json};

const HUGE: u64 = 200_000_000;

fn oversize(bytes: u64) -> Faults {
    Faults {
        oversize_bytes: bytes,
        ..Faults::default()
    }
}

/// The latest live call a simulator served (probes filtered out).
fn last_live_call(sim: &SimHandle) -> CallRecord {
    live_calls(sim).pop().expect("a live call was served")
}

#[tokio::test]
async fn a_200_mb_answer_is_refused_unread_and_one_under_the_limit_passes_intact() {
    let huge = sim("eu-west", oversize(HUGE)).await;
    let fits = sim("us-east", oversize(300_000)).await;
    // What the sim's answer weighs on the wire (timing fields vary by a few bytes).
    let direct = http()
        .post(format!("{}/", fits.url()))
        .json(&json!({"model": "mistral-7b", "prompt": "Measure me.", "temperature": 0.0, "max_tokens": 500}))
        .send()
        .await
        .unwrap();
    let wire = direct.content_length().unwrap();
    drop(direct);
    let r = router(&[
        provider("sim-eu-west", "eu-west", &huge, ""),
        provider(
            "sim-us-east",
            "us-east",
            &fits,
            &format!("max_response_bytes = {}", wire + 200),
        ),
        provider(
            "sim-us-tight",
            "sa-east",
            &fits,
            &format!("max_response_bytes = {}", wire - 200),
        ),
    ])
    .await;

    let started = Instant::now();
    let (status, body) = infer(&r, ask("mistral-7b", "eu-west", "Tell me everything.")).await;
    let took = started.elapsed();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error_code"], "PROVIDER_RESPONSE_TOO_LARGE");
    let f = &body["failure"];
    assert_eq!(f["code"], "PROVIDER_RESPONSE_TOO_LARGE");
    assert_eq!(f["stage"], "response");
    assert_eq!(f["transient"], false, "asking again buys the same answer");
    assert_eq!(
        (
            &f["provider"],
            &f["provider_type"],
            &f["region"],
            &f["model"]
        ),
        (
            &json!("sim-eu-west"),
            &json!("modal"),
            &json!("eu-west"),
            &json!("mistral-7b")
        )
    );
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("1048576 bytes (max_response_bytes)")
            && message.contains("Content-Length"),
        "{message}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Proof that the router did not read it: the sim could never write the body whole.
    let call = eventually(Duration::from_secs(10), "the sim sees the hang-up", || {
        let calls = live_calls(&huge);
        async move { calls.into_iter().find(|c| c.hung_up_mid_body) }
    })
    .await;
    assert_eq!(call.response_bytes, Some(HUGE));
    assert_eq!(call.response_sha256, None, "never written to the end");

    let mut req = ask("mistral-7b", "us-east", "Measure me.");
    req["temperature"] = json!(0.0);
    let (status, body) = infer(&r, req.clone()).await;
    assert_eq!(status, 200, "{body}");
    let text = body["response"].as_str().unwrap();
    assert_eq!(text.len(), 300_000);
    let served = last_live_call(&fits);
    assert_eq!(served.response_sha256, Some(sha256_hex(text)));

    req["region_preference"] = json!("sa-east");
    let (status, body) = infer(&r, req).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error_code"], "PROVIDER_RESPONSE_TOO_LARGE");
    let limit = (wire - 200).to_string();
    assert!(body["error"].as_str().unwrap().contains(&limit), "{body}");
    r.shutdown().await;
    huge.shutdown().await;
    fits.shutdown().await;
}

#[tokio::test]
async fn a_nul_in_an_answer_passes_through_byte_identical() {
    let eu = sim(
        "eu-west",
        Faults {
            nul_rate: 1.0,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let (status, body) = infer(&r, ask("qwen2.5-1.5b", "eu-west", "Tell me a story.")).await;
    assert_eq!(status, 200, "{body}");
    let text = body["response"].as_str().unwrap();
    assert_eq!(text.matches('\u{0}').count(), 1, "{text:?}");
    let served = last_live_call(&eu);
    assert_eq!(served.response_sha256, Some(sha256_hex(text)));

    let v1: Value = http()
        .post(format!("{}/v1/chat/completions", r.url))
        .header("X-Beacon-Region", "eu-west")
        .json(&json!({"model": "qwen2.5-1.5b", "messages": [{"role": "user", "content": "Another story."}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = v1["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains('\u{0}'), "{v1}");
    let last = last_live_call(&eu);
    assert_eq!(last.response_sha256, Some(sha256_hex(text)));
    r.shutdown().await;
    eu.shutdown().await;
}

/// Set when the stream it lives in is dropped: the client hung up.
struct HangUp(Arc<AtomicBool>);

impl Drop for HangUp {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A body that starts like JSON and never ends (no Content-Length: chunked).
fn endless(prefix: &'static str, seen: Arc<AtomicBool>) -> Body {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let first = Bytes::from_static(prefix.as_bytes());
    let s = stream::unfold((HangUp(seen), Some(first)), move |(guard, first)| {
        let next = first.unwrap_or_else(|| chunk.clone());
        async move { Some((Ok::<_, std::io::Error>(next), (guard, None))) }
    });
    Body::from_stream(s)
}

#[tokio::test]
async fn a_provider_that_never_stops_sending_is_cut_at_the_limit() {
    let flags: Vec<Arc<AtomicBool>> = (0..4).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let f = flags.clone();
    let app = axum::Router::new()
        .route(
            "/ok/",
            post(move || {
                let seen = f[0].clone();
                async move { endless("{\"success\": true, \"response\": \"", seen) }
            }),
        )
        .route("/ok/chat/completions", {
            let seen = flags[1].clone();
            post(move || {
                let seen = seen.clone();
                async move { endless("{\"choices\": [{\"message\": {\"content\": \"", seen) }
            })
        })
        .route("/err/", {
            let seen = flags[2].clone();
            post(move || {
                let seen = seen.clone();
                async move {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        endless("worker crashed: ", seen),
                    )
                        .into_response()
                }
            })
        })
        .route("/err/chat/completions", {
            let seen = flags[3].clone();
            post(move || {
                let seen = seen.clone();
                async move {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        endless("{\"error\": ", seen),
                    )
                        .into_response()
                }
            })
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let table = |name: &str, kind: &str, region: &str, path: &str| {
        format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nregion = \"{region}\"\nurl = \"{base}/{path}\"\nmodels = [\"mistral-7b\"]\nrequest_timeout = \"20s\"\n"
        )
    };
    let r = router_with(
        &format!(
            "{FAST_HEALTH}{}{}{}{}\n[limits]\nmax_response_bytes = 100000\n",
            table("endless-modal", "modal", "eu-west", "ok/"),
            table("endless-openai", "openai", "us-east", "ok"),
            table("crashing-modal", "modal", "asia-pacific", "err/"),
            table("crashing-openai", "openai", "sa-east", "err"),
        ),
        &[],
    )
    .await;
    for region in ["eu-west", "us-east"] {
        let started = Instant::now();
        let (status, body) = infer(&r, ask("mistral-7b", region, "Go on.")).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error_code"], "PROVIDER_RESPONSE_TOO_LARGE", "{body}");
        let message = body["failure"]["message"].as_str().unwrap();
        assert!(
            message.contains("100000 bytes") && message.contains("grew past it"),
            "{message}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    for region in ["asia-pacific", "sa-east"] {
        let started = Instant::now();
        let (status, body) = infer(&r, ask("mistral-7b", region, "Go on.")).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error_code"], "PROVIDER_HTTP_ERROR", "{body}");
        let message = body["failure"]["message"].as_str().unwrap();
        assert!(message.starts_with("HTTP 5"), "{message}");
        assert!(
            message.len() < 400,
            "a snippet, not the body: {}",
            message.len()
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    for flag in &flags {
        eventually(Duration::from_secs(5), "the router hung up", || {
            let seen = flag.load(Ordering::SeqCst);
            async move { seen.then_some(()) }
        })
        .await;
    }
    // A protocol violation counts against the provider, like any provider-side failure.
    let entry = provider_entry(&r, "endless-modal").await;
    assert!(
        entry["consecutive_failures"].as_u64().unwrap() >= 1,
        "{entry}"
    );
    assert_eq!(entry["last_failure"]["code"], "PROVIDER_RESPONSE_TOO_LARGE");
    r.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn client_bodies_over_the_limit_are_413_with_a_code() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router_with(
        &format!(
            "{FAST_HEALTH}{}\n[limits]\nmax_request_bytes = 10000\n",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[],
    )
    .await;
    let big = "word ".repeat(4_000);
    let (status, body) = infer(&r, ask("mistral-7b", "eu-west", &big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(body["success"], false);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("10000 bytes (max_request_bytes)"),
        "{body}"
    );
    let resp = http()
        .post(format!("{}/v1/chat/completions", r.url))
        .header("X-Beacon-Region", "eu-west")
        .json(&json!({"model": "mistral-7b", "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(live_calls(&eu).is_empty(), "nothing was sent upstream");
    // Under the limit all is well.
    let (status, body) = infer(&r, ask("mistral-7b", "eu-west", "A short question.")).await;
    assert_eq!(status, 200, "{body}");
    r.shutdown().await;

    // The default limit is 1 MiB.
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let (status, body) = infer(&r, ask("mistral-7b", "eu-west", &"x".repeat(1 << 20))).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], "PAYLOAD_TOO_LARGE");
    r.shutdown().await;
    eu.shutdown().await;
}

/// Peak resident memory of a process, from `/proc/<pid>/status` (Linux only).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The operator's incident, on the real binary: a provider answering 200 MB made the
/// router peak at 1.43 GB RSS. Now the answer is refused and the router stays small.
#[tokio::test]
async fn the_router_binary_stays_small_when_a_provider_answers_200_mb() {
    let huge = sim("eu-west", oversize(HUGE)).await;
    let dir = std::env::temp_dir().join(format!("beacon-router-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n{AUTH}{}",
            provider("sim-eu-west", "eu-west", &huge, "")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_beacon-router"))
        .arg("--config")
        .arg(&config)
        .env_remove("PORT")
        .env("ROUTER_INFERENCE_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let result = async {
        for i in 0..3 {
            let resp = http()
                .post(format!("{url}/inference"))
                .json(&ask(
                    "mistral-7b",
                    "eu-west",
                    &format!("Everything, part {i}."),
                ))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            if status == 503 {
                break; // ejected after repeated violations
            }
            assert_eq!(status, 502, "{body}");
            assert_eq!(body["error_code"], "PROVIDER_RESPONSE_TOO_LARGE");
        }
        if let Some(peak) = peak_rss_kib(child.id()) {
            // Buffering one answer would take 400 MB.
            assert!(peak < 100 * 1024, "router peak RSS {peak} KiB");
        }
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    huge.shutdown().await;
    result
}
