//! `GET /openapi.json`: the document the runner serves is OpenAPI 3.1, equals the
//! committed docs/openapi/runner.json (`BEACON_BLESS=1` rewrites it), and describes
//! exactly the routes of the router table in src/api/ — a route added without a
//! `#[utoipa::path]` (or without updating [`ROUTES`]) fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

/// Every route of the runner's router table (api/mod.rs, api/transparency.rs,
/// api/ws.rs), method and full path.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/cross-region"),
    ("get", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/jobs/{id}/executions"),
    ("get", "/api/v1/jobs/{id}/executions/all"),
    ("get", "/api/v1/jobs/{id}/events"),
    ("get", "/api/v1/jobs/{id}/report"),
    ("get", "/api/v1/jobs/{id}/report.html"),
    ("get", "/api/v1/jobs/{id}/report/answers.jsonl"),
    ("get", "/api/v1/executions"),
    ("get", "/api/v1/executions/{id}/details"),
    ("get", "/api/v1/executions/{id}/receipt"),
    ("get", "/api/v1/executions/{id}/cross-region"),
    ("get", "/api/v1/executions/{id}/cross-region-diff"),
    ("post", "/api/v1/executions/{id}/cross-region-diff"),
    ("get", "/api/v1/executions/{id}/regions"),
    ("get", "/api/v1/executions/{id}/diff-analysis"),
    ("get", "/api/v1/diffs"),
    ("get", "/api/v1/questions"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/diagnostics"),
    ("get", "/api/v1/router/providers"),
    ("post", "/api/v1/jobs/{id}/cancel"),
    ("post", "/api/v1/jobs/{id}/retry-failed"),
    ("post", "/api/v1/executions/{id}/retry-question"),
    ("post", "/api/v1/executions/{id}/retry-all-failed"),
    ("post", "/api/v1/jobs/{id}/execute"),
    ("get", "/api/v1/transparency/root"),
    ("get", "/api/v1/transparency/proof"),
    ("get", "/api/v1/transparency/bundles/{cid}"),
    ("get", "/api/v1/geo"),
    ("get", "/api/v2/jobs/{id}/bias-analysis"),
    ("get", "/transparency/bundles/{cid}"),
    ("get", "/ws"),
    ("get", "/api/v1/ws"),
    ("get", "/livez"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The source of the router table: each `.route(` call registers one path.
const TABLE_SOURCES: &[&str] = &[
    include_str!("../src/api/mod.rs"),
    include_str!("../src/api/transparency.rs"),
    include_str!("../src/api/ws.rs"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_openapi_3_1_committed_and_complete() {
    let stack = Stack::start(
        Backend::Sqlite,
        Opts {
            regions: vec!["us-east"],
            scheduler: "enabled = false".into(),
            ..Opts::default()
        },
    )
    .await
    .unwrap();
    let resp = reqwest::get(format!("{}/openapi.json", stack.runner.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served = resp.text().await.unwrap();
    beacon_service::openapi_check::assert_committed(
        &served,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi/runner.json"
        ),
        "cargo test -p beacon-runner --test openapi",
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    beacon_service::openapi_check::assert_describes(&doc, ROUTES, TABLE_SOURCES);
    // The error shape and both tokens are in the document.
    let schemas = &doc["components"]["schemas"];
    let required = schemas["ErrorBody"]["required"].as_array().unwrap();
    for field in ["error", "error_code", "details", "request_id"] {
        assert!(required.contains(&Value::from(field)), "{field} required");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["control_token"]["scheme"], "bearer");
    stack.shutdown().await;
}
