//! Acceptance 1-3: health comes from real inferences, not from a health URL; broken
//! inference ejects with a reason that names the HTTP status and body; a recovered
//! provider is re-admitted through one trial after its ejection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::{FaultPatch, Faults};
use common::*;

#[tokio::test]
async fn broken_health_url_but_working_inference_is_healthy() {
    let eu = sim(
        "eu-west",
        Faults {
            health_broken: true,
            ..Faults::default()
        },
    )
    .await;
    // The previous deployment's incident: the health URL says 404 ...
    let health = http()
        .get(format!("{}/health", eu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 404);
    let r = router(&[provider("modal-eu-west", "eu-west", &eu, "")]).await;
    // ... yet the first probe (a real inference) proves the provider healthy.
    let entry = eventually(
        Duration::from_secs(5),
        "healthy after first probe",
        || async {
            let e = provider_entry(&r, "modal-eu-west").await;
            (e["state"] == "healthy").then_some(e)
        },
    )
    .await;
    assert_eq!(entry["healthy"], true);
    assert!(entry["last_health_check"].as_i64().unwrap() > 0);
    let (status, body) = infer(
        &r,
        ask("llama3.2-1b", "EU", "What is the capital of France?"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["provider_used"], "modal-eu-west");
    assert_eq!(body["metadata"]["region"], "eu-west");
    assert!(!body["response"].as_str().unwrap().is_empty());
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn broken_inference_ejects_with_an_explained_reason_then_recovers_through_one_trial() {
    let eu = sim(
        "eu-west",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("modal-eu-west", "eu-west", &eu, "")]).await;
    // Live calls fail with the provider's 404 until unhealthy_after (3) is reached.
    for _ in 0..3 {
        let (status, body) = infer(&r, ask("llama3.2-1b", "eu-west", "Tell me about Paris.")).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["failure"]["code"], "PROVIDER_HTTP_ERROR");
        assert_eq!(body["failure"]["http_status"], 404);
        assert_eq!(body["failure"]["provider"], "modal-eu-west");
    }
    let entry = eventually(Duration::from_secs(5), "unhealthy", || async {
        let e = provider_entry(&r, "modal-eu-west").await;
        (e["state"] == "unhealthy").then_some(e)
    })
    .await;
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("404") && reason.contains("modal-http: invalid function call"),
        "{reason}"
    );
    assert_eq!(entry["last_failure"]["http_status"], 404);

    let (status, body) = infer(&r, ask("llama3.2-1b", "eu-west", "Tell me about Paris.")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "NO_HEALTHY_PROVIDER");
    let c = &body["candidates"][0];
    assert_eq!(c["provider"], "modal-eu-west");
    assert_eq!(c["state"], "unhealthy");
    assert!(
        c["last_probe_at"].is_string(),
        "the boot probe time is shown: {c}"
    );
    assert_eq!(c["last_failure"]["http_status"], 404);
    assert!(
        c["last_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("modal-http: invalid function call")
    );
    assert!(c["reason"].as_str().unwrap().contains("ejected until"));

    // Recovery: clear the fault; after the ejection one trial re-admits the provider.
    let calls_before = eu.stats().started;
    eu.set_faults(FaultPatch {
        inference_broken: Some(false),
        ..FaultPatch::default()
    })
    .unwrap();
    let entry = eventually(Duration::from_secs(5), "re-admitted", || async {
        let e = provider_entry(&r, "modal-eu-west").await;
        (e["state"] == "healthy").then_some(e)
    })
    .await;
    assert!(
        entry["reason"].as_str().unwrap().contains("re-admitted"),
        "{entry}"
    );
    assert_eq!(
        eu.stats().started - calls_before,
        1,
        "exactly one trial call re-admitted it"
    );
    let (status, _) = infer(&r, ask("llama3.2-1b", "eu-west", "Tell me about Paris.")).await;
    assert_eq!(status, 200);
    r.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn a_provider_never_probed_is_unknown_not_healthy() {
    let eu = sim(
        "eu-west",
        Faults {
            latency_ms: 60_000,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[provider("modal-eu-west", "eu-west", &eu, "")]).await;
    let e = provider_entry(&r, "modal-eu-west").await;
    assert_eq!(e["state"], "unknown");
    assert_eq!(e["healthy"], false);
    assert_eq!(e["last_health_check"], 0);
    let (_, health) = get_json(format!("{}/health", r.url)).await;
    assert_eq!(
        health["status"], "unhealthy",
        "unknown is not healthy: {health}"
    );
    let (ready, body) = get_json(format!("{}/readyz", r.url)).await;
    assert_eq!(ready, 200, "unknown providers are routable: {body}");
    assert_eq!(body["first_probe_round_complete"], false);
    r.shutdown().await;
    eu.shutdown().await;
}

/// Issue 12: a live success must not keep a provider `healthy` on evidence older than
/// the staleness window (3 x probe_interval). The file asks for a 30 s probe skip with a
/// 200 ms probe interval; the router clamps the skip, so when the provider breaks right
/// after its last live success, a probe finds out before the evidence goes stale.
#[tokio::test]
async fn the_state_shown_is_never_healthy_on_stale_evidence() {
    let eu = sim("eu-west", Faults::default()).await;
    let health = "[health]\nprobe_interval = \"200ms\"\nprobe_timeout = \"2s\"\nunhealthy_after = 1\neject_base = \"5s\"\neject_max = \"5s\"\nskip_probe_if_live_success_within = \"30s\"\n";
    let r = router_with(
        &format!("{health}{}", provider("modal-eu-west", "eu-west", &eu, "")),
        &[],
    )
    .await;
    eventually(Duration::from_secs(5), "healthy", || async {
        (provider_entry(&r, "modal-eu-west").await["state"] == "healthy").then_some(())
    })
    .await;
    // A live success, then the provider breaks: only probes can tell now.
    let (status, body) = infer(&r, ask("llama3.2-1b", "eu-west", "Tell me about Paris.")).await;
    assert_eq!(status, 200, "{body}");
    eu.set_faults(FaultPatch {
        inference_broken: Some(true),
        ..FaultPatch::default()
    })
    .unwrap();
    // Every view until the provider is found broken: never healthy and stale at once.
    let entry = eventually(
        Duration::from_secs(3),
        "found broken by a probe",
        || async {
            let e = provider_entry(&r, "modal-eu-west").await;
            assert!(
                !(e["state"] == "healthy" && e["stale"] == true),
                "healthy on stale evidence: {e}"
            );
            (e["state"] == "unhealthy").then_some(e)
        },
    )
    .await;
    assert_eq!(entry["last_failure"]["http_status"], 404, "{entry}");
    r.shutdown().await;
    eu.shutdown().await;
}
