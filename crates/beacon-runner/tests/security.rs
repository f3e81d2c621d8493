//! Hostile clients against the runner's API (issue 11): NUL in every kind of input, a
//! zero `min_success_rate` slipped into a signed spec, cross-origin "simple" requests
//! on state-changing routes, the optional control token, malformed nonces, and no
//! secret in the configuration summary or the diagnostics route. Each on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const EVIL_ORIGIN: &str = "https://evil.example";

/// A body that quotes the database (PostgreSQL's or SQLite's words for a bad value).
fn quotes_the_database(body: &Value) -> bool {
    let text = body.to_string().to_lowercase();
    [
        "invalid byte sequence",
        "0x00",
        "sqlstate",
        "database error",
        "sqlx",
    ]
    .iter()
    .any(|w| text.contains(w))
}

async fn api_only(backend: Backend) -> Option<Stack> {
    Stack::start(
        backend,
        Opts {
            scheduler: "enabled = false".into(),
            regions: vec!["us-east"],
            ..Opts::default()
        },
    )
    .await
}

/// A raw request: `method path` with an optional content type and body.
async fn raw(
    stack: &Stack,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut req = stack
        .http
        .request(
            method.parse().unwrap(),
            format!("{}{path}", stack.runner.url),
        )
        .header("Origin", EVIL_ORIGIN)
        .body(body.to_string());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

backend_test!(
    nul_anywhere_is_a_4xx_never_a_database_message,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let before = stack.runner_totals().await;
        let s = |id: &str, extra: Value| {
            stack.spec(id, &["math_basic"], &["llama3.2-1b"], &["US"], extra)
        };
        // NUL in free text of a signed spec: the benchmark name (a column of its own), the
        // metadata, a custom question's text, an object key.
        for (name, spec) in [
        ("benchmark", s("nul-bench", json!({"benchmark": {"name": "bias\u{0}detection"}}))),
        ("metadata", s("nul-meta", json!({"metadata": {"note": "a\u{0}b"}}))),
        ("key", s("nul-key", json!({"metadata": {"k\u{0}": 1}}))),
        (
            "question",
            stack.spec(
                "nul-question",
                &[],
                &["llama3.2-1b"],
                &["US"],
                json!({"questions": [{"id": "q_custom", "text": "What\u{0}?", "category": "control"}]}),
            ),
        ),
    ] {
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error_code"], "INVALID_CHARACTER", "{name}: {body}");
        assert!(!quotes_the_database(&body), "{name}: {body}");
    }
        // NUL in the nonce of an unsigned submission (nonces are stored unsigned too).
        let mut unsigned = s("nul-nonce", json!({}));
        unsigned.as_object_mut().unwrap().remove("signature");
        unsigned.as_object_mut().unwrap().remove("public_key");
        unsigned["metadata"]["nonce"] = json!("n\u{0}nce");
        let (status, body) = stack.submit(&unsigned).await;
        assert_eq!(status, 400, "{body}");
        assert!(!quotes_the_database(&body), "{body}");
        // NUL (and other control characters) in ids and query parameters.
        for path in [
            "/api/v1/jobs/job%00x",
            "/api/v1/jobs/job%00x/report",
            "/api/v1/jobs/job%00x/executions",
            "/api/v1/executions/e%00x/details",
            "/api/v1/executions/e%00x/receipt",
            "/api/v1/jobs?status=%00",
            "/api/v1/executions?job_id=a%00b",
            "/api/v1/executions?region=%01",
            "/api/v1/jobs/job%7Fx",
        ] {
            let (status, body) = stack.get(path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error_code"], "INVALID_CHARACTER", "{path}: {body}");
            assert!(!quotes_the_database(&body), "{path}: {body}");
        }
        let (status, body) = stack.post("/api/v1/jobs/job%00x/cancel", &json!({})).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (400, Some("INVALID_CHARACTER")),
            "{body}"
        );
        assert_eq!(stack.runner_totals().await, before, "nothing stored");
        stack.shutdown().await;
    }
);

backend_test!(
    an_unsigned_zero_success_rate_is_refused,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        // Signed without the field, then `"min_success_rate": 0` added: the portal's rule
        // drops a zero from the signed bytes, so the signature still holds, but the zero is
        // not the signer's.
        let mut tampered = stack.spec(
            "zero-added",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        tampered["constraints"]["min_success_rate"] = json!(0);
        assert!(
            beacon_core::signing::verify(&tampered).is_ok(),
            "the bytes verify"
        );
        let before = stack.runner_totals().await;
        let (status, body) = stack.submit(&tampered).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error_code"], "UNSIGNED_FIELD", "{body}");
        assert_eq!(
            body["details"]["field"], "constraints.min_success_rate",
            "{body}"
        );
        assert_eq!(stack.runner_totals().await, before, "nothing stored");
        // Signed with the zero inside (Beacon's signer keeps it): accepted and kept.
        let covered = stack.spec(
            "zero-signed",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({"constraints": {"min_success_rate": 0}}),
        );
        let (status, body) = stack.submit(&covered).await;
        assert_eq!(status, 202, "{body}");
        let (_, job) = stack.get("/api/v1/jobs/zero-signed").await;
        assert_eq!(job["min_success_rate"], json!(0.0), "{job}");
        stack.shutdown().await;
    }
);

backend_test!(malformed_nonces_are_named_as_such, |backend| async move {
    let Some(stack) = api_only(backend).await else {
        return;
    };
    let before = stack.runner_totals().await;
    for (name, nonce) in [
        ("too long", json!("n".repeat(129))),
        ("not a string", json!(42)),
        ("control character", json!("ab\u{7}cd")),
    ] {
        let spec = stack.spec(
            &format!("nonce-{}", name.replace(' ', "-")),
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({"metadata": {"nonce": nonce}}),
        );
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error_code"], "NONCE_INVALID", "{name}: {body}");
    }
    let mut missing = stack.spec(
        "nonce-missing",
        &["math_basic"],
        &["llama3.2-1b"],
        &["US"],
        json!({}),
    );
    missing["metadata"].as_object_mut().unwrap().remove("nonce");
    let missing = beacon_core::signing::sign(&missing, &stack.key).unwrap();
    let (_, body) = stack.submit(&missing).await;
    assert_eq!(body["error_code"], "NONCE_MISSING", "{body}");
    assert_eq!(stack.runner_totals().await, before, "nothing stored");
    stack.shutdown().await;
});

backend_test!(
    state_changing_routes_refuse_simple_cross_origin_requests,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let spec = stack.spec(
            "victim",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        // What a page on any origin can send without a preflight: text/plain, a form
        // encoding, multipart, or no body at all.
        for (ct, body) in [
            (Some("text/plain"), "{}"),
            (Some("application/x-www-form-urlencoded"), "a=b"),
            (Some("multipart/form-data; boundary=x"), "--x--"),
            (None, ""),
        ] {
            for path in [
                "/api/v1/jobs/victim/cancel",
                "/api/v1/jobs/victim/retry-failed",
                "/api/v1/jobs/victim/execute",
                "/api/v1/executions/victim/retry-all-failed",
                "/api/v1/executions/victim/retry-question",
                "/api/v1/executions/victim/cross-region-diff",
                "/api/v1/jobs",
                "/api/v1/jobs/cross-region",
            ] {
                let (status, resp) = raw(&stack, "POST", path, ct, body, None).await;
                assert_eq!(status, 415, "{path} with {ct:?}: {resp}");
                assert_eq!(
                    resp["error_code"], "UNSUPPORTED_MEDIA_TYPE",
                    "{path}: {resp}"
                );
            }
        }
        let (_, job) = stack.get("/api/v1/jobs/victim").await;
        assert_eq!(job["status"], "queued", "the job was not touched: {job}");
        // The portal's way (JSON, no body) still cancels.
        let (status, resp) = stack.portal("POST", "/jobs/victim/cancel", None).await;
        assert_eq!(status, 200, "{resp}");
        stack.shutdown().await;
    }
);

backend_test!(
    the_control_token_guards_cancel_and_retry_when_set,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let mut config = runner_config(&stack.db.url, &stack.router.url, "enabled = false");
        config.control_token = Some("control-s3cret".into());
        let guarded = beacon_runner::start(config).await.unwrap();
        let spec = stack.spec(
            "guarded",
            &["math_basic"],
            &["llama3.2-1b"],
            &["US"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let post = |path: &'static str, token: Option<&'static str>| {
            let mut req = stack
                .http
                .post(format!("{}{path}", guarded.url))
                .json(&json!({"region": "us-east", "question_index": 0}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        for path in [
            "/api/v1/jobs/guarded/cancel",
            "/api/v1/jobs/guarded/retry-failed",
            "/api/v1/jobs/guarded/execute",
            "/api/v1/executions/guarded/retry-all-failed",
            "/api/v1/executions/guarded/retry-question",
        ] {
            for token in [None, Some("wrong")] {
                let (status, body) = post(path, token).await;
                assert_eq!(status, 401, "{path} {token:?}: {body}");
                assert_eq!(body["error_code"], "UNAUTHORIZED", "{body}");
            }
        }
        // Reads stay public; the control token (or the admin token) passes.
        let r = stack
            .http
            .get(format!("{}/api/v1/jobs/guarded", guarded.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (status, body) = post("/api/v1/jobs/guarded/cancel", Some("control-s3cret")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["new_status"], "cancelled", "{body}");
        let (status, body) = post("/api/v1/jobs/guarded/cancel", Some("runner-admin-token")).await;
        assert_eq!(status, 200, "{body}");
        // Without a control token (the stack's own runner) the portal needs none.
        let (status, _) = stack
            .portal("POST", "/jobs/guarded/retry-failed", None)
            .await;
        assert_ne!(status, 401);
        guarded.shutdown().await;
        stack.shutdown().await;
    }
);

backend_test!(
    no_secret_reaches_the_diagnostics_route,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let mut config = runner_config(&stack.db.url, &stack.router.url, "enabled = false");
        let mut router = reqwest::Url::parse(&stack.router.url).unwrap();
        router.set_username("alice").unwrap();
        router.set_password(Some("pa55w0rd")).unwrap();
        router.set_query(Some("token=t0ken-in-query"));
        config.router_url = router;
        config.database_url = match backend {
            // The PostgreSQL URL gains a password parameter (trust auth ignores it).
            Backend::Postgres => format!("{}?password=db-s3cret", stack.db.url),
            Backend::Sqlite => stack.db.url.clone(),
        };
        config.control_token = Some("control-s3cret".into());
        let summary = config.summary();
        let runner = beacon_runner::start(config).await.unwrap();
        let resp = stack
            .http
            .get(format!("{}/api/v1/diagnostics", runner.url))
            .bearer_auth("runner-admin-token")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        for secret in [
            "alice",
            "pa55w0rd",
            "t0ken-in-query",
            "db-s3cret",
            "control-s3cret",
            "runner-admin-token",
        ] {
            assert!(!text.contains(secret), "{secret} in diagnostics: {text}");
            assert!(
                !summary.contains(secret),
                "{secret} in the summary: {summary}"
            );
        }
        runner.shutdown().await;
        stack.shutdown().await;
    }
);
