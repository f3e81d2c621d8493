//! Acceptance 7 (quality-bar.md "Bad input"): every row answers a clear 4xx with an
//! `error_code`, and nothing is stored (jobs, executions and nonces unchanged).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_store::Totals;
use common::*;
use serde_json::{Value, json};

async fn totals(stack: &Stack) -> Totals {
    stack.runner_totals().await
}

async fn raw(stack: &Stack, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = stack
        .http
        .post(format!("{}/api/v1/jobs", stack.runner.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

backend_test!(
    every_bad_input_row_is_refused_and_nothing_is_stored,
    |backend| async move {
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scheduler: "enabled = false".into(),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        // One good job first, for the conflict and replay rows.
        let good = stack.spec(
            "job-good",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        assert_eq!(stack.submit(&good).await.0, 202);
        let before = totals(&stack).await;
        assert_eq!((before.jobs, before.executions, before.nonces), (1, 1, 1));

        let s = |id: &str, extra: Value| {
            stack.spec(id, &["math_basic"], &["llama3.2-1b"], &["US"], extra)
        };
        let mut unsigned = s("unsigned", json!({}));
        unsigned.as_object_mut().unwrap().remove("signature");
        unsigned.as_object_mut().unwrap().remove("public_key");
        let mut tampered = s("tampered", json!({}));
        tampered["questions"] = json!(["taiwan_status"]);
        let mut replay = s("replay", json!({}));
        replay["metadata"]["nonce"] = good["metadata"]["nonce"].clone();
        let replay = beacon_core::signing::sign(&replay, &stack.key).unwrap();
        let stale = s(
            "stale",
            json!({"metadata": {"timestamp": "2020-01-01T00:00:00.000Z"}}),
        );
        let mut conflict = good.clone();
        conflict["runs"] = json!(2);
        let conflict = beacon_core::signing::sign(&conflict, &stack.key).unwrap();
        let hostile_id = s("../../etc/passwd", json!({}));

        let rows: Vec<(&str, u16, &str, Value)> = vec![
            (
                "unknown region",
                400,
                "UNKNOWN_REGION",
                s("r1", json!({"constraints": {"regions": ["Mars"]}})),
            ),
            (
                "region nobody serves",
                400,
                "UNKNOWN_REGION",
                s("r2", json!({"constraints": {"regions": ["me-central"]}})),
            ),
            (
                "unknown model",
                400,
                "UNKNOWN_MODEL",
                s("m1", json!({"models": ["gpt-9"]})),
            ),
            (
                "unknown question",
                400,
                "UNKNOWN_QUESTION",
                s("q1", json!({"questions": ["no_such_question"]})),
            ),
            (
                "empty questions",
                400,
                "NO_QUESTIONS",
                s("q2", json!({"questions": []})),
            ),
            (
                "limits exceeded",
                400,
                "LIMIT_EXCEEDED",
                s("l1", json!({"runs": 21})),
            ),
            (
                "min_success_rate > 1",
                400,
                "INVALID_MIN_SUCCESS_RATE",
                s("s1", json!({"constraints": {"min_success_rate": 1.5}})),
            ),
            (
                "min_success_rate < 0",
                400,
                "INVALID_MIN_SUCCESS_RATE",
                s("s2", json!({"constraints": {"min_success_rate": -0.1}})),
            ),
            (
                "negative timeout",
                400,
                "INVALID_DURATION",
                s("t1", json!({"constraints": {"timeout": -5}})),
            ),
            (
                "absurd timeout",
                400,
                "INVALID_DURATION",
                s("t2", json!({"constraints": {"timeout": "9000h"}})),
            ),
            ("path in id", 400, "INVALID_JOB_ID", hostile_id),
            (
                "control char in id",
                400,
                "INVALID_JOB_ID",
                s("a\u{0001}b", json!({})),
            ),
            ("missing signature", 400, "SIGNATURE_MISSING", unsigned),
            ("invalid signature", 400, "SIGNATURE_INVALID", tampered),
            ("replayed nonce", 409, "REPLAYED_NONCE", replay),
            ("stale timestamp", 400, "STALE_TIMESTAMP", stale),
            ("same id, other body", 409, "JOB_ID_CONFLICT", conflict),
        ];
        for (what, status, code, body) in rows {
            let (got, answer) = stack.submit(&body).await;
            assert_eq!(
                (got, answer["error_code"].as_str()),
                (status, Some(code)),
                "{what}: {answer}"
            );
            assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: a human sentence"
            );
        }
        let (got, answer) = raw(&stack, "application/json", b"{\"id\": \"x\", ".to_vec()).await;
        assert_eq!(
            (got, answer["error_code"].as_str()),
            (400, Some("INVALID_JSON"))
        );
        let (got, answer) = raw(&stack, "text/plain", serde_json::to_vec(&good).unwrap()).await;
        assert_eq!(
            (got, answer["error_code"].as_str()),
            (415, Some("UNSUPPORTED_MEDIA_TYPE"))
        );
        let mut big = s("big", json!({}));
        big["metadata"]["padding"] = json!("x".repeat(1024 * 1024));
        let (got, answer) = raw(
            &stack,
            "application/json",
            serde_json::to_vec(&big).unwrap(),
        )
        .await;
        assert_eq!(
            (got, answer["error_code"].as_str()),
            (413, Some("PAYLOAD_TOO_LARGE"))
        );

        assert_eq!(
            totals(&stack).await,
            before,
            "nothing was stored by any refused request"
        );

        // An identical resubmission is a replay (200), never a 409, even with its used nonce.
        let (got, answer) = stack.submit(&good).await;
        assert_eq!(
            (got, answer["idempotent"].as_bool()),
            (200, Some(true)),
            "{answer}"
        );
        // And unknown routes and jobs answer 404 text the portal recognises.
        let (got, answer) = stack.get("/api/v1/jobs/nope").await;
        assert_eq!(got, 404);
        assert!(answer["error"].as_str().unwrap().starts_with("404:"));
        stack.shutdown().await;
    }
);

backend_test!(trusted_keys_are_enforced, |backend| async move {
    let Some(stack) = Stack::start(
        backend,
        Opts {
            scheduler: "enabled = false".into(),
            ..Opts::default()
        },
    )
    .await
    else {
        return;
    };
    let other = ed25519_dalek::SigningKey::from_bytes(&[77u8; 32]);
    let trusted = beacon_core::signing::encode_public_key(&other.verifying_key());
    let db = stack.db.url.clone();
    let router = stack.router.url.clone();
    let env = move |k: &str| match k {
        "DATABASE_URL" => Some(db.clone()),
        "ROUTER_URL" => Some(router.clone()),
        "ROUTER_TOKEN" => Some(ROUTER_TOKEN.to_string()),
        _ => None,
    };
    let cfg = beacon_runner::Config::from_toml(
        &format!("listen = \"127.0.0.1:0\"\n[signatures]\ntrusted_keys = [\"{trusted}\"]\n[scheduler]\nenabled = false\n"),
        &env,
    )
    .unwrap();
    let strict = beacon_runner::start(cfg).await.unwrap();
    let spec = stack.spec(
        "untrusted",
        &["math_basic"],
        &["llama3.2-1b"],
        &["US"],
        json!({}),
    );
    let resp = stack
        .http
        .post(format!("{}/api/v1/jobs", strict.url))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "UNTRUSTED_KEY");
    assert_eq!(totals(&stack).await.jobs, 0);
    strict.shutdown().await;
    stack.shutdown().await;
});
