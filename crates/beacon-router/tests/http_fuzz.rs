//! The router's HTTP surface under hostile bytes (issue 11): `/inference` and
//! `/v1/chat/completions` with NUL, lone surrogates, bidi controls and awkward numbers
//! in every field and header, the status routes with hostile query parameters, the
//! admin routes with hostile names and tokens, and unknown paths of arbitrary bytes.
//! No answer is a 5xx, every 4xx is JSON with an error code (the route's own shape),
//! and the router still routes afterwards.
//!
//! The cases come from a fixed seed so CI is repeatable; `PROPTEST_CASES` runs more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_service::hostile::{check_every_answer, header_value, json_value_text, url_segment};
use beacon_sim::Faults;
use common::*;
use proptest::prelude::*;
use serde_json::json;

const ADMIN_TOKEN: &str = "fuzz-admin-token";

const INFERENCE_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "temperature",
    "max_tokens",
    "region_preference",
    "allow_region_fallback",
    "cost_priority",
    "trace_id",
    "timeout_ms",
    "unknown",
];

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "max_tokens",
    "stream",
    "n",
];

const HEADERS: &[&str] = &[
    "idempotency-key",
    "traceparent",
    "x-trace-id",
    "x-beacon-region",
    "content-type",
    "authorization",
];

#[derive(Debug, Clone)]
enum Case {
    /// `/inference` with one field's value replaced by raw JSON text.
    Inference(&'static str, String),
    /// `/v1/chat/completions` with one field replaced (or the message text).
    Chat(&'static str, String),
    /// A good `/inference` or chat call with one hostile header.
    Header(bool, &'static str, Vec<u8>),
    /// A GET with a hostile query or path.
    Get(String),
    /// An admin route with a hostile provider name and token.
    Admin(String, Vec<u8>),
}

fn cases() -> impl Strategy<Value = Case> {
    let inference = (
        proptest::sample::select(INFERENCE_FIELDS),
        json_value_text(),
    )
        .prop_map(|(f, t)| Case::Inference(f, t));
    let chat = (proptest::sample::select(CHAT_FIELDS), json_value_text())
        .prop_map(|(f, t)| Case::Chat(f, t));
    let header = (
        any::<bool>(),
        proptest::sample::select(HEADERS),
        header_value(),
    )
        .prop_map(|(chat, h, v)| Case::Header(chat, h, v));
    let get = (
        proptest::sample::select(
            &[
                "/providers?region=",
                "/health?x=",
                "/readyz?",
                "/metrics?",
                "/admin/config?",
                "/",
                "/v1/",
                "/inference/",
            ][..],
        ),
        url_segment(),
    )
        .prop_map(|(p, s)| Case::Get(format!("{p}{s}")));
    let admin = (url_segment(), header_value()).prop_map(|(name, token)| Case::Admin(name, token));
    prop_oneof![4 => inference, 3 => chat, 2 => header, 2 => get, 1 => admin]
}

/// A client that sends the test routers' inference token (so the cases reach the checks
/// behind it; a hostile `authorization` header replaces it) and opens a connection per
/// request (an early refusal closes a pooled connection, which would fail the next
/// request on the client's side).
fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn send(http: &reqwest::Client, base: &str, case: &Case) -> (u16, String, Vec<u8>) {
    let replace = |mut v: serde_json::Value, field: &str, text: &str| {
        v[field] = json!("@@HOSTILE@@");
        v.to_string().replace("\"@@HOSTILE@@\"", text)
    };
    let good_inference =
        || json!({"model": "llama3.2-1b", "prompt": "hi", "region_preference": "eu-west"});
    let good_chat =
        || json!({"model": "llama3.2-1b", "messages": [{"role": "user", "content": "hi"}]});
    let post = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("x-beacon-region", "eu-west")
            .body(body)
    };
    let req = match case {
        Case::Inference(field, text) => post("/inference", replace(good_inference(), field, text)),
        Case::Chat(field, text) => {
            let body = if *field == "content" {
                let mut v = good_chat();
                v["messages"][0]["content"] = json!("@@HOSTILE@@");
                v.to_string().replace("\"@@HOSTILE@@\"", text)
            } else {
                replace(good_chat(), field, text)
            };
            post("/v1/chat/completions", body)
        }
        Case::Header(chat, name, value) => {
            let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
            let (path, body) = if *chat {
                ("/v1/chat/completions", good_chat())
            } else {
                ("/inference", good_inference())
            };
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("x-beacon-region", "eu-west".parse().unwrap());
            headers.insert(*name, value);
            http.post(format!("{base}{path}"))
                .headers(headers)
                .body(body.to_string())
        }
        Case::Get(path) => http.get(format!("{base}{path}")),
        Case::Admin(name, token) => {
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(token);
            let action = ["probe", "drain", "enable"][name.len() % 3];
            http.post(format!("{base}/admin/providers/{name}/{action}"))
                .header(
                    "authorization",
                    reqwest::header::HeaderValue::from_bytes(&bearer).unwrap(),
                )
        }
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (599, String::new(), format!("no answer: {e}").into_bytes()),
    };
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status,
        ct,
        resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_on_every_route_never_give_a_5xx() {
    let eu = sim("eu-west", Faults::default()).await;
    let router = router_with(
        &format!("{FAST_HEALTH}{}", provider("eu", "eu-west", &eu, "")),
        &[("ROUTER_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    let http = client();
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        check_every_answer(&cases(), |case| {
            handle.block_on(send(&http, &router.url, case))
        })
    });
    // Still routing.
    let (status, body) = infer(&router, ask("llama3.2-1b", "eu-west", "still there?")).await;
    assert_eq!(status, 200, "{body}");
    router.shutdown().await;
    eu.shutdown().await;
}
