//! `GET /api/v1/router/providers`: the router's view of providers and regions through
//! the runner, public and without addresses or tokens, naming a broken region's
//! provider and its last failure. The route reads no store, so SQLite is enough.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_sim::Faults;
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_shows_the_routers_providers_and_which_regions_are_routable() {
    let faults = [(
        "eu-west",
        Faults {
            inference_broken: true,
            ..Faults::default()
        },
    )]
    .into_iter()
    .collect();
    let stack = Stack::start(
        Backend::Sqlite,
        Opts {
            faults,
            regions: vec!["us-east", "eu-west"],
            scheduler: "enabled = false".into(),
            // One failed probe ejects the provider: the first probe round decides.
            unhealthy_after: Some(1),
            ..Opts::default()
        },
    )
    .await
    .unwrap();
    let body: Value = eventually(Duration::from_secs(20), "eu-west ejected", || async {
        let (status, body) = stack.get("/api/v1/router/providers").await;
        assert_eq!(status, 200, "{body}");
        let eu = body["regions"]
            .as_array()?
            .iter()
            .find(|r| r["region"] == "eu-west")?
            .clone();
        (eu["routable"] == false).then_some(body)
    })
    .await;
    let region = |name: &str| {
        body["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(region("eu-west")["providers"][0], "sim-eu-west", "{body}");
    assert_eq!(region("us-east")["routable"], true, "{body}");
    let eu = body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sim-eu-west")
        .cloned()
        .unwrap();
    assert_eq!(eu["state"], "unhealthy", "{eu}");
    assert_eq!(eu["last_failure"]["http_status"], 404, "{eu}");
    // Public: no provider address and no token anywhere in it.
    let text = body.to_string();
    for (_, sim) in &stack.sims {
        let host = sim.url().trim_start_matches("http://").to_string();
        assert!(!text.contains(&host), "{text}");
    }
    assert!(!text.contains(ROUTER_TOKEN), "{text}");
    assert!(eu["last_failure"]["url"].is_null(), "{eu}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_cannot_be_asked_is_a_503_with_a_code() {
    let db = Db::new(Backend::Sqlite).await.unwrap();
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let runner = beacon_runner::start(runner_config(&db.url, &url, "enabled = false"))
        .await
        .unwrap();
    let resp = reqwest::get(format!("{}/api/v1/router/providers", runner.url))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "ROUTER_UNAVAILABLE", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("ROUTER_UNREACHABLE"),
        "{body}"
    );
    runner.shutdown().await;
}
