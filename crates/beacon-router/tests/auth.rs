//! Caller authentication (issue 11, item 2): the inference routes need the configured
//! bearer token, a refused request buys nothing, and `Idempotency-Key`s are scoped by
//! caller so nobody can poison someone else's key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};

use beacon_sim::Faults;
use common::*;
use serde_json::{Value, json};

/// A second accepted token (rotation: both are valid at once).
const OTHER: &str = "beacon-router-second-token-9876543210";

async fn post(
    client: &reqwest::Client,
    url: String,
    body: &Value,
    key: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client.post(url).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test]
async fn inference_without_the_right_token_is_401_and_buys_nothing() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router(&[provider("sim-eu-west", "eu-west", &eu, "")]).await;
    let chat = json!({"model": "llama3.2-1b", "messages": [{"role": "user", "content": "Spend my credit."}]});
    for client in [
        client_with_token(None),
        client_with_token(Some("wrong-token-0123456789abcdef")),
    ] {
        let (status, body, headers) = post(
            &client,
            format!("{}/inference", r.url),
            &ask("llama3.2-1b", "eu-west", "Spend my credit."),
            Some("exec-1:1"),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error_code"], "UNAUTHORIZED", "{body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["failure"]["code"], "UNAUTHORIZED");
        assert_eq!(body["failure"]["transient"], false);
        assert_eq!(headers["www-authenticate"], "Bearer");

        let resp = client
            .post(format!("{}/v1/chat/completions", r.url))
            .header("X-Beacon-Region", "eu-west")
            .json(&chat)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert!(
        live_calls(&eu).is_empty(),
        "nothing was bought for a refused caller"
    );
    // The refused key was not taken: the real caller's request with it is answered.
    let (status, body) = infer_with(
        &r,
        ask("llama3.2-1b", "eu-west", "The real question."),
        &[("Idempotency-Key", "exec-1:1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The public routes stay public (the portal reads /providers from the browser).
    let anyone = client_with_token(None);
    for path in ["/health", "/providers", "/livez", "/readyz", "/metrics"] {
        let status = anyone
            .get(format!("{}{path}", r.url))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.as_u16() != 401, "{path} answered {status}");
    }
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn another_callers_idempotency_key_neither_blocks_nor_replays() {
    let eu = sim("eu-west", Faults::default()).await;
    let env = [("ROUTER_INFERENCE_TOKEN", format!("{OTHER},{TOKEN}"))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = router_with(
        &format!(
            "{AUTH}{FAST_HEALTH}{}",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &env,
    )
    .await;
    let attacker = client_with_token(Some(OTHER));
    let runner = http();
    let url = format!("{}/inference", r.url);
    let key = Some("exec-42:1");
    // X, who can reach the router, pre-sends the runner's key with another body.
    let poison = ask("llama3.2-1b", "eu-west", "Poison.");
    let (status, x_first, _) = post(&attacker, url.clone(), &poison, key).await;
    assert_eq!(status, 200, "{x_first}");
    // Y, the runner, then sends its real request: a real answer, not a conflict and not
    // X's answer.
    let real = ask("llama3.2-1b", "eu-west", "What happened in 1989?");
    let (status, y_first, headers) = post(&runner, url.clone(), &real, key).await;
    assert_eq!(status, 200, "{y_first}");
    assert!(
        headers.get("idempotent-replayed").is_none(),
        "Y's answer was not X's"
    );
    assert_ne!(y_first["response"], x_first["response"]);
    let prompts: Vec<String> = live_calls(&eu)
        .iter()
        .map(|c| c.prompt_sha256.clone())
        .collect();
    assert_eq!(prompts.len(), 2, "one call each: {prompts:?}");
    // Each caller's repeat replays its own answer, never the other's.
    let (_, y_again, headers) = post(&runner, url.clone(), &real, key).await;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(y_again["response"], y_first["response"]);
    let (_, x_again, headers) = post(&attacker, url.clone(), &poison, key).await;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(x_again["response"], x_first["response"]);
    // Within one caller a different body is still a conflict.
    let (status, body, _) = post(&runner, url, &poison, key).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (409, Some("IDEMPOTENCY_KEY_CONFLICT"))
    );
    assert_eq!(
        live_calls(&eu).len(),
        2,
        "replays and conflicts bought nothing"
    );
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn without_tokens_keys_are_scoped_by_peer_address() {
    let eu = sim("eu-west", Faults::default()).await;
    let r = router_with(
        &format!(
            "auth.allow_unauthenticated = true\n{FAST_HEALTH}{}",
            provider("sim-eu-west", "eu-west", &eu, "")
        ),
        &[],
    )
    .await;
    // Two peers: 127.0.0.1 and 127.0.0.2 (both loopback on Linux).
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .build()
            .unwrap()
    };
    let (x, y) = (from(2), from(1));
    let url = format!("{}/inference", r.url);
    let key = Some("exec-7:1");
    let (status, x_first, _) = post(
        &x,
        url.clone(),
        &ask("llama3.2-1b", "eu-west", "Poison."),
        key,
    )
    .await;
    assert_eq!(status, 200, "{x_first}");
    let real = ask("llama3.2-1b", "eu-west", "The real question.");
    let (status, y_first, headers) = post(&y, url.clone(), &real, key).await;
    assert_eq!(status, 200, "{y_first}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_ne!(y_first["response"], x_first["response"]);
    // The same peer on a new connection is the same caller: its repeat replays.
    let (_, again, headers) = post(&from(1), url, &real, key).await;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["response"], y_first["response"]);
    assert_eq!(live_calls(&eu).len(), 2);
    r.shutdown().await;
    eu.shutdown().await;
}
