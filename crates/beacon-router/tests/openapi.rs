//! `GET /openapi.json`: the document the router serves is OpenAPI 3.1, equals the
//! committed docs/openapi/router.json (`BEACON_BLESS=1` rewrites it), and describes
//! exactly the routes of the router table in src/api/mod.rs — a route added without a
//! `#[utoipa::path]` (or without updating [`ROUTES`]) fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_sim::Faults;
use common::*;
use serde_json::Value;

/// Every route of the router table (api/mod.rs), method and path.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/inference"),
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{id}"),
    ("get", "/providers"),
    ("get", "/health"),
    ("get", "/livez"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/admin/providers/{name}/probe"),
    ("post", "/admin/providers/{name}/drain"),
    ("post", "/admin/providers/{name}/enable"),
    ("get", "/admin/config"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn the_served_document_is_openapi_3_1_committed_and_complete() {
    let sim = sim("us-east", Faults::default()).await;
    let router = router(&[provider("modal-us", "us-east", &sim, "")]).await;
    // Public: no token.
    let resp = reqwest::get(format!("{}/openapi.json", router.url))
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
            "/../../docs/openapi/router.json"
        ),
        "cargo test -p beacon-router --test openapi",
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    beacon_service::openapi_check::assert_describes(
        &doc,
        ROUTES,
        &[include_str!("../src/api/mod.rs")],
    );
    let schemas = &doc["components"]["schemas"];
    for shape in [
        "ErrorBody",
        "InferenceRequest",
        "InferenceResponse",
        "Failure",
        "ProvidersResponse",
    ] {
        assert!(schemas.get(shape).is_some(), "{shape} missing");
    }
    let inference = &doc["paths"]["/inference"]["post"];
    assert_eq!(
        inference["security"][0]["inference_token"],
        Value::Array(vec![])
    );
    for status in [
        "200", "400", "401", "404", "409", "413", "502", "503", "504",
    ] {
        assert!(
            inference["responses"].get(status).is_some(),
            "/inference {status}"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["inference_token"]["scheme"], "bearer");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
}
