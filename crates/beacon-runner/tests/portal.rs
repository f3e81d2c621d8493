//! The portal's contract (portal-contract.md sections 2-8), replayed against a real
//! runner on both backends: the calls the portal makes, with its headers, bodies and
//! query strings, the spec built and signed its way, and every field it reads checked.
//! The result pages carry the numbers of `GET /jobs/{id}/report` for the same job and
//! group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::portal::{ORIGIN, QUESTIONS, sign_portal_way, string, unsigned_spec, wrapper};
use common::*;
use serde_json::{Value, json};

/// The portal's default regions, as its UI codes.
const CODES: [&str; 3] = ["US", "EU", "ASIA"];

/// Submits the portal's wrapper for `id` and waits for the job to end.
async fn run_portal_job(stack: &Stack, id: &str) -> Value {
    let spec = sign_portal_way(unsigned_spec(id, &QUESTIONS, &MODELS, &CODES), &stack.key);
    let body = wrapper(spec.clone(), &CODES);
    let (status, created) = stack
        .portal("POST", "/jobs/cross-region", Some(&body))
        .await;
    assert_eq!(status, 202, "{created}");
    for key in ["id", "job_id", "jobspec_id", "cross_region_execution_id"] {
        assert_eq!(created[key], id, "{key}: {created}");
    }
    assert_eq!(created["total_regions"], 3);
    assert_eq!(
        created["min_regions"], 2,
        "floor(3 × 0.67) from the wrapper"
    );
    assert!(created["status"].is_string() && created["submitted_at"].is_string());
    // The same submission again (the portal without Idempotency-Key): a replay.
    let (status, again) = stack
        .portal("POST", "/jobs/cross-region", Some(&body))
        .await;
    assert_eq!(
        (status, &again["idempotent"]),
        (200, &json!(true)),
        "{again}"
    );
    stack.wait_terminal(id, Duration::from_secs(60)).await
}

backend_test!(the_portals_calls_get_real_answers, |backend| async move {
    let Some(stack) = Stack::start(
        backend,
        Opts {
            scenario: true,
            ..Opts::default()
        },
    )
    .await
    else {
        return;
    };
    let id = "bias-detection-1764892800000";
    let done = run_portal_job(&stack, id).await;
    assert_eq!(done["status"], "completed", "{}", done["progress"]);

    // 2.1.4: the live view's poll, flattened the portal's way.
    let (status, job) = stack
        .portal(
            "GET",
            &format!("/jobs/{id}?include=executions&exec_limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["job"]["questions"], json!(QUESTIONS));
    assert_eq!(job["job"]["metadata"]["models"], json!(MODELS));
    assert_eq!(
        job["job"]["benchmark"]["name"],
        "multi-model-bias-detection"
    );
    assert_eq!(job["status"], "completed");
    assert_eq!(job["stage"], "completed");
    let execs = job["executions"].as_array().unwrap();
    assert_eq!(execs.len(), 36);
    for e in execs {
        for key in [
            "id",
            "job_id",
            "question_id",
            "model_id",
            "region",
            "status",
            "provider_id",
            "started_at",
            "created_at",
            "completed_at",
        ] {
            assert!(e[key].is_string(), "{key}: {e}");
        }
        assert!(["us-east", "eu-west", "asia-pacific"].contains(&string(&e["region"])));
        assert!(e["output"]["response"].is_string(), "{e}");
        assert!(
            e["retry_count"].is_u64() && e["max_retries"].is_u64(),
            "{e}"
        );
        assert!(e["response_classification"].is_string() && e["is_substantive"].is_boolean());
        assert!(e["duration"].is_u64() && e["exit_code"] == 0, "{e}");
    }
    let (_, latest) = stack
        .portal("GET", &format!("/jobs/{id}?include=latest"), None)
        .await;
    assert_eq!(latest["executions"].as_array().unwrap().len(), 1);

    // 2.1.5, 2.2: lists.
    let (_, jobs) = stack.portal("GET", "/jobs?limit=50", None).await;
    let listed = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap();
    assert!(listed["status"].is_string() && listed["created_at"].is_string());
    let (_, newest) = stack.portal("GET", "/executions?limit=100", None).await;
    let rows = newest["executions"].as_array().unwrap();
    assert_eq!(rows.len(), 36);
    let exec_id = string(&rows[0]["id"]).to_string();

    // 2.2: the execution detail page.
    let (status, details) = stack
        .portal("GET", &format!("/executions/{exec_id}/details"), None)
        .await;
    assert_eq!(status, 200, "{details}");
    assert!(details["output_data"]["response"].is_string(), "{details}");
    assert!(
        details["output_data"]["metadata"]["execution_time"].is_f64(),
        "{details}"
    );
    assert!(
        details["output_data"]["metadata"]
            .get("tokens_generated")
            .is_some()
    );
    assert!(details["model"].is_string() && details["provider_id"].is_string());
    let (status, receipt) = stack
        .portal("GET", &format!("/executions/{exec_id}/receipt"), None)
        .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        receipt["output"]["response"],
        details["output_data"]["response"]
    );
    assert!(
        receipt["execution_details"]["duration"].is_f64(),
        "{receipt}"
    );
    assert_eq!(
        receipt["provenance"]["provider_info"]["name"],
        details["provider_id"]
    );
    assert_eq!(receipt["jobspec_id"], id);
    assert!(receipt["signature"].is_string() && receipt["public_key"].is_string());

    // 2.2 bias analysis (v2): the /report numbers, nothing invented.
    let (_, report) = stack.get(&format!("/api/v1/jobs/{id}/report")).await;
    let (status, bias) = stack
        .portal("GET", &format!("/api/v2/jobs/{id}/bias-analysis"), None)
        .await;
    assert_eq!(status, 200, "{bias}");
    for key in [
        "bias_variance",
        "censorship_rate",
        "factual_consistency",
        "narrative_divergence",
    ] {
        assert_eq!(bias["analysis"][key], report["analysis"][key], "{key}");
        assert!(bias["analysis"][key].is_f64(), "{key}: {bias}");
    }
    assert_eq!(
        bias["analysis"]["recommendation"],
        report["analysis"]["recommendation"]
    );
    assert!(string(&bias["analysis"]["recommendation"]).starts_with("HIGH RISK"));
    assert_eq!(
        bias["analysis"]["key_differences"],
        report["analysis"]["key_differences"]
    );
    assert_eq!(
        bias["analysis"]["risk_assessment"],
        report["analysis"]["risk_assessment"]
    );
    assert_eq!(bias["region_scores"], report["region_scores"]);
    assert_eq!(bias["cross_region_execution_id"], id);
    assert!(bias["created_at"].is_string());

    // 2.4: the per-model page, the question in its URL form (hyphens).
    let (status, page) = stack
        .portal(
            "GET",
            &format!(
                "/executions/{id}/cross-region?model_id=mistral-7b&question_id=tiananmen-neutral"
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let group = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model_id"] == "mistral-7b" && g["question_id"] == "tiananmen_neutral")
        .unwrap();
    assert_eq!(
        page["analysis"]["narrative_divergence"],
        group["divergence"]
    );
    assert_eq!(page["divergence"], group["divergence"]);
    let results = page["region_results"].as_array().unwrap();
    let mut codes: Vec<&str> = results.iter().map(|r| string(&r["region"])).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["ASIA", "EU", "US"]);
    for r in results {
        assert_eq!(r["metadata"]["model_id"], "mistral-7b");
        assert!(r["execution_output"]["response"].is_string(), "{r}");
        let censored = group["censorship"][string(&r["region_id"])]
            .as_bool()
            .unwrap();
        assert_eq!(r["scoring"]["censorship_detected"], censored, "{r}");
        assert!(
            r["scoring"]["bias_score"].is_f64() && r["duration_ms"].is_u64(),
            "{r}"
        );
    }
    assert_eq!(
        page["cross_region_execution"]["question_id"],
        "tiananmen_neutral"
    );
    assert!(page["summary"]["risk_level"].is_string());

    // 2.4: the diff family answers alike, with the job's numbers.
    for (method, path) in [
        ("GET", "cross-region-diff"),
        ("POST", "cross-region-diff"),
        ("GET", "regions"),
        ("GET", "diff-analysis"),
        ("GET", "cross-region"),
    ] {
        let (status, diff) = stack
            .portal(method, &format!("/executions/{id}/{path}"), None)
            .await;
        assert_eq!(status, 200, "{method} {path}: {diff}");
        assert_eq!(diff["job_id"], id);
        assert_eq!(diff["executions"].as_array().unwrap().len(), 36, "{path}");
        assert_eq!(
            diff["analysis"]["censorship_rate"],
            report["analysis"]["censorship_rate"]
        );
        let e = &diff["executions"][0];
        assert!(e["region"].is_string() && e["status"].is_string() && e["provider_id"].is_string());
        assert!(e["output_data"]["response"].is_string(), "{e}");
    }
    let (_, diffs) = stack.portal("GET", "/diffs?limit=5", None).await;
    let mine = diffs["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["job_id"] == id)
        .unwrap();
    assert_eq!(mine["risk_level"], report["analysis"]["risk_level"]);

    // 2.3: geo and the transparency log (every receipt is appended within a poll).
    let (status, geo) = stack.portal("GET", "/geo", None).await;
    assert_eq!(status, 200);
    assert!(geo["countries"].is_object(), "{geo}");
    let root = eventually(Duration::from_secs(10), "36 receipts logged", || async {
        let (_, root) = stack.portal("GET", "/transparency/root", None).await;
        (root["sequence"].as_u64() >= Some(36)).then_some(root)
    })
    .await;
    assert!(root["root"].is_string() && root["merkle_root"] == root["root"]);
    assert!(root["updated_at"].is_string());
    let (status, proof) = stack
        .portal(
            "GET",
            &format!("/transparency/proof?execution_id={exec_id}&ipfs_cid="),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["merkle_root"], root["merkle_root"]);
    // `bundleUrl(cid)` without a gateway: `<base>/transparency/bundles/<cid>`.
    let bundle = stack
        .http
        .get(format!(
            "{}/transparency/bundles/{}",
            stack.runner.url,
            string(&proof["cid"])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);

    // 2.3 and the rest.
    let (_, health) = stack.portal("GET", "/health", None).await;
    for s in health["services"].as_array().unwrap() {
        assert!(s["name"].is_string() && s["status"].is_string());
    }
    let (_, questions) = stack.portal("GET", "/questions", None).await;
    assert_eq!(
        questions["categories"]["control_questions"][0]["question_id"],
        "math_basic"
    );
    let (status, exec) = stack
        .portal("POST", &format!("/jobs/{id}/execute"), None)
        .await;
    assert_eq!((status, &exec["status"]), (200, &json!("completed")));
    let (status, cancel) = stack
        .portal("POST", &format!("/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{cancel}");
    let (status, missing) = stack.portal("GET", "/jobs/bias-detection-0", None).await;
    assert_eq!(status, 404);
    assert!(string(&missing["error"]).starts_with("404"), "{missing}");
    assert!(missing["error_code"].is_string());
    stack.shutdown().await;
});

backend_test!(
    an_unsigned_wrapper_cannot_weaken_what_was_signed,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        let spec = |id: &str| {
            sign_portal_way(
                unsigned_spec(id, &QUESTIONS[..1], &MODELS[..1], &["US", "EU"]),
                &stack.key,
            )
        };
        let cases = [
            (
                wrapper(spec("bias-detection-1"), &["US"]),
                "TARGET_REGIONS_MISMATCH",
            ),
            (
                wrapper(spec("bias-detection-2"), &["US", "EU", "ASIA"]),
                "TARGET_REGIONS_MISMATCH",
            ),
            (
                json!({"jobspec": spec("bias-detection-3"), "target_regions": ["US", "EU"], "min_success_rate": 1.5}),
                "INVALID_MIN_SUCCESS_RATE",
            ),
            (
                json!({"jobspec": spec("bias-detection-4"), "target_regions": ["US", "EU"], "min_regions": 3}),
                "INVALID_MIN_REGIONS",
            ),
            (
                json!({"jobspec": spec("bias-detection-5")}),
                "INVALID_WRAPPER",
            ),
            (
                json!({"jobspec": spec("bias-detection-6"), "target_regions": ["MARS"]}),
                "UNKNOWN_REGION",
            ),
        ];
        for (body, code) in cases {
            let (status, err) = stack
                .portal("POST", "/jobs/cross-region", Some(&body))
                .await;
            assert_eq!((status, string(&err["error_code"])), (400, code), "{err}");
            assert!(err["error"].is_string());
        }
        // A signed field changed inside the wrapper: the signature says so.
        let mut tampered = spec("bias-detection-7");
        tampered["runs"] = json!(2);
        let (status, err) = stack
            .portal(
                "POST",
                "/jobs/cross-region",
                Some(&wrapper(tampered, &["US", "EU"])),
            )
            .await;
        assert_eq!(
            (status, &err["error_code"]),
            (400, &json!("SIGNATURE_INVALID")),
            "{err}"
        );
        let totals = stack.runner_totals().await;
        assert_eq!((totals.jobs, totals.executions), (0, 0), "nothing stored");

        // The wrapper may raise the bar: its min_success_rate 0.9 wins over the
        // default 0.67, and US-EU aliases name the same regions.
        let body = json!({"jobspec": spec("bias-detection-8"), "target_regions": ["eu-west", "US"],
                          "min_success_rate": 0.9, "min_regions": 2});
        let (status, ok) = stack
            .portal("POST", "/jobs/cross-region", Some(&body))
            .await;
        assert_eq!(status, 202, "{ok}");
        assert_eq!(
            (ok["min_success_rate"].as_f64(), ok["min_regions"].as_u64()),
            (Some(0.9), Some(2))
        );
        // Idempotency-Key, as on POST /jobs: the same body again is a replay, another
        // body under the same key a conflict.
        let keyed = |body: &Value| {
            stack
                .http
                .post(format!("{}/api/v1/jobs/cross-region", stack.runner.url))
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Idempotency-Key", "beacon-1x2y3z")
                .body(body.to_string())
                .send()
        };
        let first = wrapper(spec("bias-detection-9"), &["US", "EU"]);
        assert_eq!(keyed(&first).await.unwrap().status(), 202);
        let again = keyed(&first).await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<Value>().await.unwrap()["idempotent"], true);
        let other = keyed(&wrapper(spec("bias-detection-10"), &["US", "EU"]))
            .await
            .unwrap();
        assert_eq!(other.status(), 409);
        assert_eq!(
            other.json::<Value>().await.unwrap()["error_code"],
            "IDEMPOTENCY_KEY_CONFLICT"
        );
        // CORS: the portal's preflight is allowed, Idempotency-Key included.
        let pre = stack
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/jobs/cross-region", stack.runner.url),
            )
            .header("Origin", ORIGIN)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,idempotency-key",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(pre.headers()["access-control-allow-origin"], ORIGIN);
        let allowed = pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(allowed.contains("idempotency-key"), "{allowed}");
        stack.shutdown().await;
    }
);

backend_test!(
    too_few_answers_are_said_not_invented,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        let id = "bias-detection-single";
        let spec = sign_portal_way(
            unsigned_spec(id, &QUESTIONS[..2], &MODELS[..1], &["US"]),
            &stack.key,
        );
        let (status, _) = stack
            .portal("POST", "/jobs/cross-region", Some(&wrapper(spec, &["US"])))
            .await;
        assert_eq!(status, 202);
        stack.wait_terminal(id, Duration::from_secs(30)).await;
        // One region: nothing to compare.
        let (status, err) = stack
            .portal("GET", &format!("/api/v2/jobs/{id}/bias-analysis"), None)
            .await;
        assert_eq!(
            (status, &err["error_code"]),
            (409, &json!("INSUFFICIENT_DATA")),
            "{err}"
        );
        let (status, diff) = stack
            .portal("GET", &format!("/executions/{id}/cross-region-diff"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (&diff["analysis"], &diff["analysis_status"]),
            (&Value::Null, &json!("insufficient_data"))
        );
        assert_eq!(diff["executions"].as_array().unwrap().len(), 2);
        stack.shutdown().await;
    }
);
