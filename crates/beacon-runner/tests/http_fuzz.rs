//! The runner's HTTP surface under hostile bytes (issue 11): every route, with NUL, lone
//! surrogates, bidi controls, awkward numbers and arbitrary URL bytes in ids, query
//! parameters, JSON fields (signed, so the checks behind the signature run too),
//! unsigned JSON text and headers. No answer is a 5xx, every 4xx is
//! `{"error", "error_code"}`, and the runner still serves afterwards. On both backends.
//!
//! The cases come from a fixed seed so CI is repeatable; `PROPTEST_CASES` runs more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_service::hostile::{
    check_every_answer, header_value, json_value_text, nasty_value, url_segment,
};
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Routes with one `{}` for an id.
const ID_ROUTES: &[&str] = &[
    "/api/v1/jobs/{}",
    "/api/v1/jobs/{}/executions",
    "/api/v1/jobs/{}/executions/all",
    "/api/v1/jobs/{}/events",
    "/api/v1/jobs/{}/report",
    "/api/v1/jobs/{}/report.html",
    "/api/v1/executions/{}/details",
    "/api/v1/executions/{}/receipt",
    "/api/v1/executions/{}/cross-region",
    "/api/v1/executions/{}/cross-region-diff",
    "/api/v1/executions/{}/regions",
    "/api/v1/executions/{}/diff-analysis",
    "/api/v2/jobs/{}/bias-analysis",
    "/transparency/bundles/{}",
    "/api/v1/transparency/proof/{}",
    "/api/v1/{}",
    "/{}",
];

/// Routes that take query parameters.
const QUERY_ROUTES: &[&str] = &[
    "/api/v1/jobs",
    "/api/v1/executions",
    "/api/v1/questions",
    "/api/v1/diffs",
    "/api/v1/jobs/job-base",
    "/api/v1/jobs/job-base/executions",
    "/api/v1/transparency/root",
    "/api/v1/geo",
];

const QUERY_KEYS: &[&str] = &[
    "status",
    "limit",
    "offset",
    "job_id",
    "region",
    "model",
    "include",
    "exec_limit",
    "question",
    "page",
    "cursor",
    "since",
    "a",
];

/// State-changing routes with one `{}` for an id.
const POST_ROUTES: &[&str] = &[
    "/api/v1/jobs/{}/cancel",
    "/api/v1/jobs/{}/retry-failed",
    "/api/v1/jobs/{}/execute",
    "/api/v1/executions/{}/retry-question",
    "/api/v1/executions/{}/retry-all-failed",
    "/api/v1/executions/{}/cross-region-diff",
];

/// Fields of a signed spec to replace with a hostile value (JSON pointers).
const SPEC_FIELDS: &[&str] = &[
    "/id",
    "/version",
    "/questions/0",
    "/questions",
    "/models/0",
    "/models",
    "/constraints/regions/0",
    "/constraints/timeout",
    "/constraints/provider_timeout",
    "/constraints/min_success_rate",
    "/constraints/min_regions",
    "/metadata/nonce",
    "/metadata/timestamp",
    "/metadata/note",
    "/benchmark/name",
    "/params/temperature",
    "/params/max_tokens",
    "/runs",
    "/extra",
];

#[derive(Debug, Clone)]
enum Case {
    Get(String),
    /// A signed spec with one field replaced.
    SignedSpec(&'static str, Value),
    /// Unsigned JSON text with one field's value replaced by raw text.
    RawSpec(&'static str, String),
    /// The portal's cross-region wrapper with one field replaced by raw text.
    Wrapper(&'static str, String),
    /// A control route with a hostile id and body.
    Control(String, String),
    /// A good spec with a hostile `Idempotency-Key` or `Content-Type`.
    Header(&'static str, Vec<u8>),
}

fn fill(template: &str, segment: &str) -> String {
    template.replace("{}", segment)
}

fn cases() -> impl Strategy<Value = Case> {
    let get = (proptest::sample::select(ID_ROUTES), url_segment())
        .prop_map(|(t, s)| Case::Get(fill(t, &s)));
    let query = (
        proptest::sample::select(QUERY_ROUTES),
        proptest::collection::vec((proptest::sample::select(QUERY_KEYS), url_segment()), 1..3),
    )
        .prop_map(|(route, params)| {
            let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Case::Get(format!("{route}?{}", q.join("&")))
        });
    let signed = (proptest::sample::select(SPEC_FIELDS), nasty_value())
        .prop_map(|(f, v)| Case::SignedSpec(f, v));
    let raw = (
        proptest::sample::select(
            &[
                "id",
                "questions",
                "models",
                "constraints",
                "metadata",
                "runs",
                "params",
            ][..],
        ),
        json_value_text(),
    )
        .prop_map(|(f, t)| Case::RawSpec(f, t));
    let wrapper = (
        proptest::sample::select(
            &[
                "jobspec",
                "target_regions",
                "min_regions",
                "min_success_rate",
                "enable_analysis",
            ][..],
        ),
        json_value_text(),
    )
        .prop_map(|(f, t)| Case::Wrapper(f, t));
    let control = (
        proptest::sample::select(POST_ROUTES),
        url_segment(),
        json_value_text(),
    )
        .prop_map(|(t, s, body)| Case::Control(fill(t, &s), body));
    let header = (
        proptest::sample::select(
            &["idempotency-key", "content-type", "authorization", "origin"][..],
        ),
        header_value(),
    )
        .prop_map(|(h, v)| Case::Header(h, v));
    prop_oneof![3 => get, 2 => query, 3 => signed, 2 => raw, 1 => wrapper, 2 => control, 1 => header]
}

/// The runner under test and a client that opens a connection per request: a pooled
/// connection the server closed after an early answer (it does not read a body it
/// refuses) would fail the next request on the client's side, not the server's.
struct Target<'a> {
    stack: &'a Stack,
    url: String,
    http: reqwest::Client,
}

/// Sends one case; returns (status, content type, body).
async fn send(target: &Target<'_>, case: &Case) -> (u16, String, Vec<u8>) {
    let stack = target.stack;
    let url = |path: &str| format!("{}{path}", target.url);
    let good = || {
        let mut s = stack.spec(
            "fuzz",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        s["id"] = json!(format!("fuzz-{}", beacon_store::testing::random_hex()));
        beacon_core::signing::sign(&s, &stack.key).unwrap()
    };
    let json_post = |path: &str, body: String| {
        target
            .http
            .post(url(path))
            .header("content-type", "application/json")
            .body(body)
    };
    let req = match case {
        Case::Get(path) => target.http.get(url(path)),
        Case::SignedSpec(pointer, value) => {
            let mut spec = good();
            set_pointer(&mut spec, pointer, value.clone());
            let spec = beacon_core::signing::sign(&spec, &stack.key).unwrap();
            json_post("/api/v1/jobs", spec.to_string())
        }
        Case::RawSpec(field, text) => {
            let mut spec = good();
            spec[*field] = json!("@@HOSTILE@@");
            json_post(
                "/api/v1/jobs",
                spec.to_string().replace("\"@@HOSTILE@@\"", text),
            )
        }
        Case::Wrapper(field, text) => {
            let mut wrapper = json!({"jobspec": good(), "target_regions": ["US"], "min_regions": 1,
                                     "min_success_rate": 0.67, "enable_analysis": true});
            wrapper[*field] = json!("@@HOSTILE@@");
            let body = wrapper.to_string().replace("\"@@HOSTILE@@\"", text);
            json_post("/api/v1/jobs/cross-region", body)
        }
        Case::Control(path, body) => json_post(path, body.clone()),
        Case::Header(name, value) => {
            let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
            let ct = if *name == "content-type" {
                value.clone()
            } else {
                reqwest::header::HeaderValue::from_static("application/json")
            };
            target
                .http
                .post(url("/api/v1/jobs"))
                .header(*name, value)
                .header("content-type", ct)
                .body(good().to_string())
        }
    };
    let resp = match req.send().await {
        Ok(r) => r,
        // No answer at all is a failure of the server too (599 is no real status).
        Err(e) => return (599, String::new(), format!("no answer: {e}").into_bytes()),
    };
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // An event stream of a job that exists never ends; its status is the answer.
    let body = if ct.starts_with("text/event-stream") {
        Vec::new()
    } else {
        resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
    };
    (status, ct, body)
}

/// Sets the value at a JSON pointer, creating the last key if needed.
fn set_pointer(v: &mut Value, pointer: &str, value: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = value;
        return;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = v.pointer_mut(parent) {
        map.insert(key.to_string(), value);
    }
}

backend_test!(
    hostile_bytes_on_every_route_never_give_a_5xx,
    |backend| async move {
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scheduler: "enabled = false".into(),
                regions: vec!["us-east"],
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        // A runner of its own without the submission rate limit, so every case reaches
        // the checks behind it instead of a 429.
        let mut config = runner_config(&stack.db.url, &stack.router.url, "enabled = false");
        config.submissions_per_minute = 1_000_000;
        let runner = beacon_runner::start(config).await.unwrap();
        let target = Target {
            stack: &stack,
            url: runner.url.clone(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        };
        let base = stack.spec(
            "job-base",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        assert_eq!(stack.submit(&base).await.0, 202);
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            check_every_answer(&cases(), |case| handle.block_on(send(&target, case)))
        });
        // Still serving, and still accepting good work.
        let livez = target
            .http
            .get(format!("{}/livez", runner.url))
            .send()
            .await
            .unwrap();
        assert_eq!(livez.status(), 200);
        let after = stack.spec(
            "job-after",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        let accepted = target
            .http
            .post(format!("{}/api/v1/jobs", runner.url))
            .json(&after)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202);
        runner.shutdown().await;
        stack.shutdown().await;
    }
);
