//! The job spec reader: every reading rule of runner.md, the portal's real bodies, and
//! one refusal per rule with its error code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use beacon_core::Catalogue;
use beacon_core::spec::{JobPlan, Limits, SpecError, read_spec, read_spec_bytes};
use serde_json::{Value, json};

mod common;

fn read(v: Value) -> Result<JobPlan, SpecError> {
    read_spec(v, &Catalogue::builtin(), &Limits::default())
}

fn code(v: Value) -> &'static str {
    match read(v) {
        Ok(plan) => panic!("expected a refusal, got a plan for {}", plan.id),
        Err(e) => e.error_code(),
    }
}

fn base() -> Value {
    json!({
        "id": "job-1", "version": "v1",
        "questions": ["math_basic"], "models": ["llama3.2-1b"],
        "constraints": {"regions": ["us-east"]}
    })
}

fn with(mut v: Value, path: &[&str], new: Value) -> Value {
    let mut cur = &mut v;
    for key in &path[..path.len() - 1] {
        cur = &mut cur[*key];
    }
    cur[path[path.len() - 1]] = new;
    v
}

#[test]
fn portal_bodies_become_plans_with_the_expected_cell_count() {
    let fixtures: Vec<Value> =
        serde_json::from_str(&common::read_fixture("portal-signatures.json")).unwrap();
    let wallet = &fixtures
        .iter()
        .find(|f| f["name"] == "portal-bias-detection-wallet")
        .unwrap()["body"];
    let plan = read(wallet.clone()).unwrap();
    assert_eq!(
        plan.total_executions() as u64,
        wallet["metadata"]["total_executions_expected"]
            .as_u64()
            .unwrap()
    );
    assert_eq!(
        plan.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["us-east", "eu-west"]
    );
    assert_eq!(plan.models.len(), 3, "models come from metadata.models");
    assert_eq!(
        plan.options.timeout,
        Duration::from_secs(600),
        "nanoseconds"
    );
    assert_eq!(plan.options.min_success_rate, 0.67, "default");
    assert_eq!(
        &plan.spec, wallet,
        "the spec is kept verbatim, wallet_auth included"
    );
    assert_eq!(plan.cells().count(), plan.total_executions());

    let unicode = &fixtures
        .iter()
        .find(|f| f["name"] == "unicode-and-numbers")
        .unwrap()["body"];
    let plan = read(unicode.clone()).unwrap();
    assert_eq!(plan.runs, 2);
    assert_eq!(plan.questions[0].id.as_str(), "q_zh");
    assert!(plan.questions[0].inline && !plan.questions[1].inline);
    assert_eq!(plan.models[0].name.as_deref(), Some("Mistral 7B Instruct"));
    assert_eq!(plan.options.timeout, Duration::from_secs(1800));
    // 2 questions × 1 model × 3 regions × 2 runs.
    assert_eq!(plan.total_executions(), 12);
}

#[test]
fn models_fall_back_to_metadata_and_are_deduplicated_in_order() {
    let v = json!({"id": "j", "questions": ["math_basic"], "constraints": {"regions": ["EU"]},
                   "metadata": {"model": "qwen2.5-1.5b"}});
    assert_eq!(read(v).unwrap().models[0].id.as_str(), "qwen2.5-1.5b");
    let v = with(
        base(),
        &["models"],
        json!(["b-model", {"id": "a-model"}, "b-model", {"id": "a-model", "name": "A"}]),
    );
    let ids: Vec<String> = read(v)
        .unwrap()
        .models
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(ids, ["b-model", "a-model"]);
    // An empty `models` falls through to metadata.models.
    let v = with(
        with(base(), &["models"], json!([])),
        &["metadata"],
        json!({"models": ["m1"]}),
    );
    assert_eq!(read(v).unwrap().models[0].id.as_str(), "m1");
}

#[test]
fn regions_resolve_aliases_and_collapse_duplicates() {
    let v = with(
        base(),
        &["constraints", "regions"],
        json!(["US", "us-east", "europe", "APAC"]),
    );
    let plan = read(v).unwrap();
    assert_eq!(
        plan.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["us-east", "eu-west", "asia-pacific"]
    );
}

#[test]
fn cells_cover_the_cross_product_once() {
    let v = json!({"id": "j", "questions": ["math_basic", "taiwan_status", "hongkong_2019"],
                   "models": ["a", "b", "c"], "constraints": {"regions": ["US", "EU", "ASIA"]}, "runs": 2});
    let plan = read(v).unwrap();
    let mut keys: Vec<String> = plan
        .cells()
        .map(|c| format!("{}/{}/{}/{}", c.question.id, c.model.id, c.region, c.run))
        .collect();
    assert_eq!(keys.len(), 54);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 54, "no cell twice");
}

#[test]
fn options_are_read_and_checked() {
    let v = with(
        base(),
        &["constraints"],
        json!({"regions": ["EU"], "min_success_rate": 0.5, "timeout": "2h", "provider_timeout": "90s", "min_regions": 1}),
    );
    let v = with(v, &["params"], json!({"temperature": 0, "max_tokens": 64}));
    let o = read(v).unwrap().options;
    assert_eq!(
        (o.min_success_rate, o.timeout, o.provider_timeout),
        (0.5, Duration::from_secs(7200), Duration::from_secs(90))
    );
    assert_eq!(
        (o.temperature, o.max_tokens, o.min_regions),
        (0.0, 64, Some(1))
    );
}

#[test]
fn every_rule_refuses_with_its_code() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "INVALID_SPEC"),
        (
            with(base(), &["id"], json!("../etc/passwd")),
            "INVALID_JOB_ID",
        ),
        (with(base(), &["id"], json!("a\u{0007}b")), "INVALID_JOB_ID"),
        (with(base(), &["id"], json!(7)), "INVALID_JOB_ID"),
        (
            with(base(), &["version"], json!("v2")),
            "UNSUPPORTED_VERSION",
        ),
        (with(base(), &["questions"], json!([])), "NO_QUESTIONS"),
        (
            with(base(), &["questions"], json!(["no_such_question"])),
            "UNKNOWN_QUESTION",
        ),
        (
            with(base(), &["questions"], json!([{"id": "q"}])),
            "INVALID_QUESTION",
        ),
        (
            with(
                base(),
                &["questions"],
                json!([{"id": "q", "text": "a"}, {"id": "q", "text": "b"}]),
            ),
            "DUPLICATE_QUESTION",
        ),
        (
            with(
                base(),
                &["questions"],
                json!([{"id": "q", "text": "x".repeat(8193)}]),
            ),
            "LIMIT_EXCEEDED",
        ),
        (
            with(base(), &["models"], json!([{"name": "no id"}])),
            "INVALID_MODEL",
        ),
        (
            with(base(), &["models"], json!(["bad/model"])),
            "INVALID_MODEL",
        ),
        (with(base(), &["models"], Value::Null), "NO_MODELS"),
        (
            with(base(), &["constraints", "regions"], json!([])),
            "NO_REGIONS",
        ),
        (
            with(base(), &["constraints", "regions"], json!(["Mars"])),
            "UNKNOWN_REGION",
        ),
        (
            with(base(), &["constraints", "min_success_rate"], json!(1.5)),
            "INVALID_MIN_SUCCESS_RATE",
        ),
        (
            with(base(), &["constraints", "min_success_rate"], json!(-0.1)),
            "INVALID_MIN_SUCCESS_RATE",
        ),
        (
            with(base(), &["constraints", "timeout"], json!(-5)),
            "INVALID_DURATION",
        ),
        (
            with(base(), &["constraints", "timeout"], json!("1000h")),
            "INVALID_DURATION",
        ),
        (
            with(base(), &["constraints", "provider_timeout"], json!("1ms")),
            "INVALID_DURATION",
        ),
        (
            with(base(), &["constraints", "timeout"], json!("soon")),
            "INVALID_DURATION",
        ),
        (with(base(), &["runs"], json!(0)), "INVALID_RUNS"),
        (with(base(), &["runs"], json!(21)), "LIMIT_EXCEEDED"),
        (
            with(base(), &["params", "temperature"], json!(9)),
            "INVALID_PARAMS",
        ),
        (
            with(base(), &["params", "max_tokens"], json!(0)),
            "INVALID_PARAMS",
        ),
    ];
    for (v, want) in cases {
        let shown = v.to_string().chars().take(120).collect::<String>();
        assert_eq!(code(v), want, "{shown}");
    }
}

#[test]
fn limits_are_enforced_and_named() {
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"id": format!("q{i}"), "text": "t"}))
        .collect();
    let err = read(with(base(), &["questions"], json!(many))).unwrap_err();
    assert_eq!(
        (err.error_code(), err.field.as_deref()),
        ("LIMIT_EXCEEDED", Some("questions"))
    );

    let models: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let questions: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("q{i}"), "text": "t"}))
        .collect();
    let v = json!({"id": "big", "questions": questions, "models": models,
                   "constraints": {"regions": ["US", "EU", "ASIA", "r4", "r5", "r6", "r7", "r8", "r9", "r10"]},
                   "runs": 2});
    let err = read(v).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("executions"), "{err}");
    assert!(err.message.contains("101000"), "{}", err.message);

    let big = vec![b' '; 1024 * 1024 + 1];
    let err = read_spec_bytes(&big, &Catalogue::builtin(), &Limits::default()).unwrap_err();
    assert_eq!(
        (err.error_code(), err.http_status()),
        ("PAYLOAD_TOO_LARGE", 413)
    );
    let err = read_spec_bytes(b"{not json", &Catalogue::builtin(), &Limits::default()).unwrap_err();
    assert_eq!((err.error_code(), err.http_status()), ("INVALID_JSON", 400));
}
