//! The rest of the HTTP API: no route shows a secret (acceptance 11), admin routes
//! behind a bearer token, the OpenAI-compatible front door, /health, /metrics, and the
//! binary's `listening on` line and exit code 64 on bad configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use beacon_sim::Faults;
use common::*;
use serde_json::json;

const ADMIN: &str = "admin-token-value-7f3a";
const PROVIDER_TOKEN: &str = "provider-secret-9c1e";

#[tokio::test]
async fn no_route_shows_a_secret_and_admin_needs_the_token() {
    let eu = sim("eu-west", Faults::default()).await;
    let broken = sim(
        "us-east",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let text = format!(
        "admin_token_env = \"ROUTER_ADMIN_TOKEN\"\n{FAST_HEALTH}{}{}",
        provider("eu", "eu-west", &eu, "auth_header_env = \"EU_TOKEN\""),
        provider("us", "us-east", &broken, "auth_header_env = \"EU_TOKEN\""),
    );
    let r = router_with(
        &text,
        &[("ROUTER_ADMIN_TOKEN", ADMIN), ("EU_TOKEN", PROVIDER_TOKEN)],
    )
    .await;
    let (status, _) = infer(&r, ask("llama3.2-1b", "eu-west", "hello")).await;
    assert_eq!(status, 200);
    let (status, _) = infer(&r, ask("llama3.2-1b", "us-east", "hello")).await;
    assert_eq!(status, 502);

    let client = http();
    let mut bodies = Vec::new();
    for path in [
        "/providers",
        "/health",
        "/livez",
        "/readyz",
        "/metrics",
        "/admin/config",
        "/nope",
    ] {
        bodies.push(
            client
                .get(format!("{}{path}", r.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let authed = client
        .get(format!("{}/admin/config", r.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status().as_u16(), 200);
    bodies.push(authed.text().await.unwrap());
    bodies.push(
        infer(&r, ask("llama3.2-1b", "us-east", "again"))
            .await
            .1
            .to_string(),
    );
    for body in &bodies {
        assert!(!body.contains(ADMIN), "admin token leaked: {body}");
        assert!(
            !body.contains(PROVIDER_TOKEN),
            "provider token leaked: {body}"
        );
        assert!(
            !body.contains("ROUTER_ADMIN_TOKEN=") && !body.contains("EU_TOKEN="),
            "env leaked: {body}"
        );
    }
    let (_, providers) = get_json(format!("{}/providers", r.url)).await;
    let listing = providers["providers"].to_string();
    assert!(
        providers["providers"][1]["last_failure"].is_object(),
        "{listing}"
    );
    assert!(
        !listing.contains("http://") && !listing.contains("https://"),
        "no endpoint URL in /providers: {listing}"
    );

    // Admin: off without the token, wrong token refused, right token works.
    let resp = client
        .post(format!("{}/admin/providers/eu/drain", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client
        .post(format!("{}/admin/providers/eu/drain", r.url))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client
        .post(format!("{}/admin/providers/eu/drain", r.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(provider_entry(&r, "eu").await["state"], "draining");
    let (status, body) = infer(&r, ask("llama3.2-1b", "eu-west", "while drained")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("NO_HEALTHY_PROVIDER"))
    );
    assert!(
        body["candidates"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("draining")
    );
    client
        .post(format!("{}/admin/providers/eu/enable", r.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let probe: serde_json::Value = client
        .post(format!("{}/admin/providers/us/probe", r.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(probe["provider"], "us");
    r.shutdown().await;
    eu.shutdown().await;
    broken.shutdown().await;
}

#[tokio::test]
async fn admin_routes_are_off_without_a_token() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router(&[provider("eu", "eu-west", &eu, "")]).await;
    let resp = http()
        .post(format!("{}/admin/providers/eu/probe", r.url))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "ADMIN_DISABLED");
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn openai_front_door_and_openai_kind_providers() {
    let ap = sim("asia-pacific", Faults::default()).await;
    let text = format!(
        "{FAST_HEALTH}[[providers]]\nname = \"vllm-ap\"\nkind = \"openai\"\nregion = \"asia-pacific\"\nurl = \"{}/v1\"\nmodels = {{ \"qwen2.5-1.5b\" = \"qwen2.5-1.5b\" }}\n",
        ap.url()
    );
    let r = router_with(&text, &[]).await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", r.url))
        .header("X-Beacon-Region", "ASIA")
        .json(&json!({"model": "qwen2.5-1.5b", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let resp = http()
        .post(format!("{}/v1/chat/completions", r.url))
        .json(&json!({"model": "qwen2.5-1.5b", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Beacon-Region")
    );
    r.shutdown().await;
    ap.shutdown().await;
}

/// With trace export off (no OTLP endpoint in tests) the caller's W3C `traceparent`
/// reaches the provider as sent, on both provider contracts, so a provider's log still
/// correlates with the runner's execution.
#[tokio::test]
async fn the_callers_traceparent_is_forwarded_upstream() {
    let eu = sim("eu-west", Faults::default()).await;
    let ap = sim("asia-pacific", Faults::default()).await;
    let text = format!(
        "{FAST_HEALTH}{}[[providers]]\nname = \"vllm-ap\"\nkind = \"openai\"\nregion = \"asia-pacific\"\nurl = \"{}/v1\"\nmodels = [\"qwen2.5-1.5b\"]\n",
        provider("modal-eu", "eu-west", &eu, ""),
        ap.url()
    );
    let r = router_with(&text, &[]).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for (model, region) in [("mistral-7b", "eu-west"), ("qwen2.5-1.5b", "asia-pacific")] {
        let (status, body) = infer_with(
            &r,
            json!({"model": model, "prompt": "Name a river.", "region_preference": region}),
            &[("traceparent", tp)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // The router's trace id comes from the traceparent when the body has none.
        assert_eq!(
            body["metadata"]["trace_id"],
            "0af7651916cd43dd8448eb211c80319c"
        );
    }
    for s in [&eu, &ap] {
        let calls = live_calls(s);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].traceparent.as_deref(), Some(tp));
    }
    r.shutdown().await;
    eu.shutdown().await;
    ap.shutdown().await;
}

#[tokio::test]
async fn health_tells_the_truth_and_metrics_count() {
    let eu = sim("eu-west", Faults::default()).await;
    let us = sim(
        "us-east",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[
        provider("eu", "eu-west", &eu, ""),
        provider("us", "us-east", &us, ""),
    ])
    .await;
    eventually(Duration::from_secs(5), "eu healthy", || async {
        (provider_entry(&r, "eu").await["state"] == "healthy").then_some(())
    })
    .await;
    let (status, health) = get_json(format!("{}/health", r.url)).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["regions"], json!(["eu-west"]));
    assert_eq!(health["providers_total"], 2);
    infer(&r, ask("llama3.2-1b", "eu-west", "count me")).await;
    let metrics = http()
        .get(format!("{}/metrics", r.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("beacon_router_requests_total{provider=\"eu\",region=\"eu-west\",model=\"llama3.2-1b\",outcome=\"success\"} 1"), "{metrics}");
    assert!(metrics.contains("beacon_router_provider_state{provider=\"eu\",state=\"healthy\"} 1"));
    assert!(metrics.contains("beacon_router_probes_total{provider=\"us\",outcome=\"failed\"}"));
    assert!(metrics.contains("beacon_router_overhead_seconds_count 1"));
    r.shutdown().await;
    eu.shutdown().await;
    us.shutdown().await;
}

#[tokio::test]
async fn the_binary_prints_its_address_and_exits_64_on_bad_config() {
    let bin = env!("CARGO_BIN_EXE_beacon-router");
    let dir = std::env::temp_dir().join(format!("beacon-router-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let one = "[[providers]]\nname = \"p\"\nkind = \"modal\"\nregion = \"eu-west\"\nurl = \"http://127.0.0.1:9/\"\nmodels = [\"m\"]\n";
    std::fs::write(
        &bad,
        format!(
            "listen = \"127.0.0.1:0\"\n{AUTH}{one}auth_header_env = \"BEACON_TEST_UNSET_VAR\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&bad)
        .env_remove("BEACON_TEST_UNSET_VAR")
        .env("ROUTER_INFERENCE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("providers[0].auth_header_env") && err.contains("BEACON_TEST_UNSET_VAR"),
        "{err}"
    );
    // No inference token and no explicit allow_unauthenticated: the router does not
    // start open to anyone who reaches it.
    let open = dir.join("open.toml");
    std::fs::write(&open, format!("listen = \"127.0.0.1:0\"\n{one}")).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&open)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.inference_token_env"), "{err}");

    let eu = sim("eu-west", Faults::default()).await;
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "listen = \"127.0.0.1:0\"\n{AUTH}{}",
            provider("eu", "eu-west", &eu, "")
        ),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&good)
        .env_remove("PORT")
        .env("ROUTER_INFERENCE_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?}"
    );
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let (status, _) = get_json(format!("{url}/livez")).await;
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
    eu.shutdown().await;
}
