//! Shared helpers of the integration tests: start simulators in process, talk to them
//! over real HTTP, poll their stats.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use beacon_sim::{SimConfig, SimHandle, SimStats, Simulator};
use serde_json::{Value, json};

pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn modal_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "prompt": prompt, "temperature": 0.0, "max_tokens": 256})
}

/// POST / with the Modal contract.
pub async fn ask(
    c: &reqwest::Client,
    sim: &SimHandle,
    model: &str,
    prompt: &str,
) -> reqwest::Result<reqwest::Response> {
    c.post(format!("{}/", sim.url()))
        .json(&modal_body(model, prompt))
        .send()
        .await
}

/// POST / and parse the JSON answer (panics on transport errors).
pub async fn ask_json(
    c: &reqwest::Client,
    sim: &SimHandle,
    model: &str,
    prompt: &str,
) -> (u16, Value) {
    let r = ask(c, sim, model, prompt).await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// GET /__sim/stats over HTTP.
pub async fn http_stats(c: &reqwest::Client, sim: &SimHandle) -> SimStats {
    c.get(format!("{}/__sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
