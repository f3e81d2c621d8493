//! The router's `/metrics` (issue 12): after traffic, the exposition passes
//! `promtool check metrics` with no warning, every series carries a `# HELP` and `# TYPE`
//! from the catalogue, latencies are histograms in seconds, and docs/metrics.md lists
//! every metric the catalogue has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_router::metrics::CATALOGUE;
use beacon_service::promtool::{
    assert_documented, assert_follows_catalogue, assert_promtool_clean,
};
use beacon_sim::Faults;
use common::*;

const METRICS_DOC: &str = include_str!("../../../docs/metrics.md");

#[tokio::test]
async fn metrics_after_traffic_pass_promtool_and_follow_the_catalogue() {
    let eu = sim("eu-west", Faults::default()).await;
    let us = sim(
        "us-east",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )
    .await;
    let r = router(&[
        provider("eu", "eu-west", &eu, ""),
        provider("us", "us-east", &us, ""),
    ])
    .await;
    eventually(Duration::from_secs(5), "eu healthy", || async {
        (provider_entry(&r, "eu").await["state"] == "healthy").then_some(())
    })
    .await;
    assert_eq!(infer(&r, ask("llama3.2-1b", "eu-west", "one")).await.0, 200);
    assert_eq!(infer(&r, ask("mistral-7b", "eu-west", "two")).await.0, 200);
    // A failing region: whatever the router answers, the exposition stays clean.
    infer(&r, ask("llama3.2-1b", "us-east", "three")).await;
    let resp = http()
        .get(format!("{}/metrics", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();

    // The queue wait is only recorded when a request waited for a provider's slot;
    // none did here.
    assert_follows_catalogue(&text, CATALOGUE, &["beacon_router_queue_wait_seconds"]);
    assert!(
        text.contains("beacon_router_overhead_seconds_bucket{le=\"0.001\"}"),
        "{text}"
    );
    assert!(text.contains(
        "beacon_router_requests_total{provider=\"eu\",region=\"eu-west\",model=\"mistral-7b\",outcome=\"success\"} 1"
    ));
    assert_promtool_clean("the router", &text);
    r.shutdown().await;
    eu.shutdown().await;
    us.shutdown().await;
}

#[test]
fn the_metrics_doc_lists_every_router_metric() {
    assert_documented(METRICS_DOC, CATALOGUE);
}
