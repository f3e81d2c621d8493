//! Test harness: real simulators and a real router in this process, on port 0, over
//! real HTTP. Readiness is the bound socket (both `start` functions return after
//! binding); state changes are awaited by polling routes, never by sleeping.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use beacon_core::Region;
use beacon_core::receipt::sha256_hex;
use beacon_router::{Config, RouterHandle};
use beacon_sim::{Faults, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

pub const PROBE_PROMPT: &str = "Reply with the single word OK.";

pub async fn sim(region: &str, faults: Faults) -> SimHandle {
    let region = Region::parse(region).unwrap();
    Simulator::start(SimConfig::for_region(region).with_faults(faults))
        .await
        .unwrap()
}

/// A `[[providers]]` table for a simulator; `extra` adds TOML lines.
pub fn provider(name: &str, region: &str, sim: &SimHandle, extra: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"modal\"\nregion = \"{region}\"\nurl = \"{}/\"\nmodels = [\"llama3.2-1b\", \"mistral-7b\", \"qwen2.5-1.5b\"]\n{extra}\n",
        sim.url()
    )
}

/// Fast health settings so state changes happen in milliseconds.
pub const FAST_HEALTH: &str = "[health]\nprobe_interval = \"2s\"\nprobe_timeout = \"2s\"\nunhealthy_after = 3\neject_base = \"400ms\"\neject_max = \"2s\"\nskip_probe_if_live_success_within = \"2s\"\n";

/// The inference token of the test routers (`ROUTER_INFERENCE_TOKEN`); [`http`] sends it.
pub const TOKEN: &str = "beacon-router-test-token-0123456789";
/// The `[auth]` line of the test routers (as a dotted key, so it fits before any table).
pub const AUTH: &str = "auth.inference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n";

/// A router from `toml_text` (without `listen`); unless the text has its own `auth`
/// settings, inference takes [`TOKEN`].
pub async fn router_with(toml_text: &str, env: &[(&str, &str)]) -> RouterHandle {
    let own = toml_text.contains("[auth]") || toml_text.lines().any(|l| l.starts_with("auth."));
    let auth = if own { "" } else { AUTH };
    let text = format!("listen = \"127.0.0.1:0\"\n{auth}{toml_text}");
    let mut vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("ROUTER_INFERENCE_TOKEN".into(), TOKEN.into()));
    let lookup = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let config = Config::from_toml(&text, &lookup).unwrap_or_else(|e| panic!("{e}\n{text}"));
    beacon_router::start(config).await.unwrap()
}

pub async fn router(providers: &[String]) -> RouterHandle {
    router_with(&format!("{FAST_HEALTH}{}", providers.concat()), &[]).await
}

/// A client that sends [`TOKEN`] on every request, as the runner does.
pub fn http() -> reqwest::Client {
    client_with_token(Some(TOKEN))
}

/// A client sending `Authorization: Bearer <token>`, or nothing.
pub fn client_with_token(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// POST /inference; returns (status, body).
pub async fn infer(router: &RouterHandle, body: Value) -> (u16, Value) {
    infer_with(router, body, &[]).await
}

pub async fn infer_with(
    router: &RouterHandle,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http().post(format!("{}/inference", router.url)).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub fn ask(model: &str, region: &str, prompt: &str) -> Value {
    json!({"model": model, "prompt": prompt, "region_preference": region})
}

pub async fn get_json(url: String) -> (u16, Value) {
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The `/providers` entry of one provider.
pub async fn provider_entry(router: &RouterHandle, name: &str) -> Value {
    let (_, v) = get_json(format!("{}/providers", router.url)).await;
    v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no provider {name} in {v}"))
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the simulator received other than health probes.
pub fn live_calls(sim: &SimHandle) -> Vec<beacon_sim::CallRecord> {
    let probe = sha256_hex(PROBE_PROMPT);
    sim.stats()
        .calls
        .into_iter()
        .filter(|c| c.prompt_sha256 != probe)
        .collect()
}
