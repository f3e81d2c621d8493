//! CORS over real HTTP: the portal's browser routes (`/health`, `/providers`) answer
//! preflights and reads from allowed origins only; `/inference` is never opened to
//! browsers; `CORS_ORIGINS` wins over the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use beacon_sim::Faults;
use common::*;
use reqwest::{Method, Response};

const ACAO: &str = "access-control-allow-origin";

async fn preflight(url: &str, path: &str, origin: &str, method: &str) -> Response {
    http()
        .request(Method::OPTIONS, format!("{url}{path}"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap()
}

async fn get_from(url: &str, path: &str, origin: &str) -> Response {
    http()
        .get(format!("{url}{path}"))
        .header("Origin", origin)
        .header("Content-Type", "application/json; charset=utf-8")
        .send()
        .await
        .unwrap()
}

fn allowed_origin(resp: &Response) -> Option<String> {
    resp.headers()
        .get(ACAO)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn browser_routes_answer_allowed_origins_only() {
    let eu = sim("eu-west", Faults::default()).await;
    let text = format!(
        "cors_origins = [\"https://portal.example.org\"]\n{FAST_HEALTH}{}",
        provider("eu", "eu-west", &eu, "")
    );
    let r = router_with(&text, &[]).await;
    let ok = "https://portal.example.org";
    for path in ["/health", "/providers"] {
        let resp = preflight(&r.url, path, ok, "GET").await;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        assert_eq!(allowed_origin(&resp).as_deref(), Some(ok), "{path}");
        let methods = resp.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_ascii_uppercase();
        assert!(methods.contains("GET"), "{methods}");
        let headers = resp.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("content-type"), "{headers}");

        let resp = get_from(&r.url, path, ok).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(allowed_origin(&resp).as_deref(), Some(ok), "{path}");

        // Another origin gets no permission (the browser then hides the answer), and
        // the defaults are gone once the file names its own list.
        for other in ["https://evil.example", "http://localhost:5173"] {
            let resp = preflight(&r.url, path, other, "GET").await;
            assert_eq!(allowed_origin(&resp), None, "{path} from {other}");
            let resp = get_from(&r.url, path, other).await;
            assert_eq!(allowed_origin(&resp), None, "{path} from {other}");
        }
    }
    // Server-to-server and operator routes are not opened to browsers at all.
    for (path, method) in [
        ("/inference", "POST"),
        ("/v1/chat/completions", "POST"),
        ("/metrics", "GET"),
        ("/admin/config", "GET"),
    ] {
        let resp = preflight(&r.url, path, ok, method).await;
        assert_eq!(allowed_origin(&resp), None, "{path}");
        assert!(!resp.status().is_success(), "{path}: {}", resp.status());
    }
    let resp = http()
        .post(format!("{}/inference", r.url))
        .header("Origin", ok)
        .json(&ask("llama3.2-1b", "eu-west", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "servers still call it");
    assert_eq!(allowed_origin(&resp), None);
    r.shutdown().await;
}

#[tokio::test]
async fn defaults_env_override_and_any() {
    let eu = sim("eu-west", Faults::default()).await;
    let providers = provider("eu", "eu-west", &eu, "");

    // Nothing configured: the portal's local development origins.
    let r = router_with(&format!("{FAST_HEALTH}{providers}"), &[]).await;
    let resp = preflight(&r.url, "/health", "http://localhost:5173", "GET").await;
    assert_eq!(
        allowed_origin(&resp).as_deref(),
        Some("http://localhost:5173")
    );
    r.shutdown().await;

    // CORS_ORIGINS wins over the file.
    let text = format!("cors_origins = [\"https://file.example\"]\n{FAST_HEALTH}{providers}");
    let r = router_with(
        &text,
        &[(
            "CORS_ORIGINS",
            "https://env.example, https://portal.example.org",
        )],
    )
    .await;
    let resp = get_from(&r.url, "/providers", "https://env.example").await;
    assert_eq!(
        allowed_origin(&resp).as_deref(),
        Some("https://env.example")
    );
    let resp = get_from(&r.url, "/providers", "https://file.example").await;
    assert_eq!(allowed_origin(&resp), None);
    r.shutdown().await;

    // "*": any page may read the two public routes.
    let r = router_with(
        &format!("cors_origins = [\"*\"]\n{FAST_HEALTH}{providers}"),
        &[],
    )
    .await;
    let resp = get_from(&r.url, "/health", "https://anyone.example").await;
    assert_eq!(allowed_origin(&resp).as_deref(), Some("*"));
    r.shutdown().await;
}
