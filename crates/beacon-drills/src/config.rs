//! Configuration of the children a drill starts: a runner (its TOML file with a fast
//! `[scheduler]`, and the exact environment: `DATABASE_URL`, `ROUTER_URL`,
//! `RUNNER_SIGNING_KEY`, `RUNNER_ADMIN_TOKEN`, `ROUTER_TOKEN`) and a router (one Modal
//! provider per simulator, a probe prompt of its own so probes can be told apart in
//! call logs, inference behind [`INFERENCE_TOKEN`]).

use std::collections::BTreeMap;

use anyhow::Context;
use beacon_core::signing::{encode_public_key, encode_signing_key};
use ed25519_dalek::SigningKey;

/// The router's health-probe prompt: distinctive, so the probes can be left out of the
/// simulators' call logs.
pub const PROBE_PROMPT: &str = "beacon-drills health probe: reply OK.";
/// The admin token every drill runner gets (`/api/v1/diagnostics`).
pub const ADMIN_TOKEN: &str = "drill-admin-token";
/// The router's inference token: the router child reads it from
/// [`INFERENCE_TOKEN_ENV`], every runner child sends it (`ROUTER_TOKEN`).
pub const INFERENCE_TOKEN: &str = "drill-router-inference-token-0123";
/// The router's `[auth] inference_token_env`.
pub const INFERENCE_TOKEN_ENV: &str = "ROUTER_INFERENCE_TOKEN";

/// A runner child's settings. Starts from [`RunnerSettings::fast`]; `scheduler` and
/// `breaker` override single keys (values are TOML values: `"2s"`, `16`, `false`).
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// The lease owner name (`instance_id`), also the log file's name.
    pub instance_id: String,
    scheduler: BTreeMap<String, toml::Value>,
    breaker: BTreeMap<String, toml::Value>,
    /// `ROUTER_TIMEOUT` in seconds (unset: the runner's default).
    pub router_timeout_secs: Option<u64>,
    /// Signs this instance's receipts; distinct per instance, so a receipt tells which
    /// instance finished an execution.
    pub receipt_key: SigningKey,
    /// More variables for the child (the traces drill's `OTEL_*`).
    pub extra_env: Vec<(String, String)>,
}

impl RunnerSettings {
    /// The runner tests' fast scheduler (crates/beacon-runner/tests/common
    /// `FAST_SCHEDULER`): 50 ms claim poll, 500 ms heartbeat, 5 s lease, 20-200 ms
    /// backoff, 5 s shutdown grace. The receipt key is derived from the instance id.
    pub fn fast(instance_id: &str) -> RunnerSettings {
        let mut seed = [7u8; 32];
        for (i, b) in instance_id.bytes().enumerate() {
            seed[i % 32] ^= b.rotate_left(i as u32 % 8);
        }
        let scheduler = [
            ("poll_interval", "50ms"),
            ("heartbeat", "500ms"),
            ("lease", "5s"),
            ("backoff_base", "20ms"),
            ("backoff_max", "200ms"),
            ("shutdown_grace", "5s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), toml::Value::from(v)))
        .collect();
        RunnerSettings {
            instance_id: instance_id.to_string(),
            scheduler,
            breaker: BTreeMap::new(),
            router_timeout_secs: None,
            receipt_key: SigningKey::from_bytes(&seed),
            extra_env: Vec::new(),
        }
    }

    /// Sets one `[scheduler]` key (`lease`, `max_concurrency_per_job`, …).
    pub fn scheduler(mut self, key: &str, value: impl Into<toml::Value>) -> RunnerSettings {
        self.scheduler.insert(key.to_string(), value.into());
        self
    }

    /// Sets one `[breaker]` key.
    pub fn breaker(mut self, key: &str, value: impl Into<toml::Value>) -> RunnerSettings {
        self.breaker.insert(key.to_string(), value.into());
        self
    }

    /// The base64 public key its receipts carry.
    pub fn receipt_public_key(&self) -> String {
        encode_public_key(&self.receipt_key.verifying_key())
    }

    /// The runner's TOML file: a free port on 127.0.0.1, signed specs required, a
    /// generous submission rate, and the scheduler and breaker tables.
    pub fn toml(&self) -> anyhow::Result<String> {
        let mut root = toml::Table::new();
        root.insert("listen".into(), "127.0.0.1:0".into());
        root.insert("instance_id".into(), self.instance_id.clone().into());
        root.insert("submissions_per_minute".into(), 10_000.into());
        let mut sig = toml::Table::new();
        sig.insert("policy".into(), "required".into());
        root.insert("signatures".into(), sig.into());
        root.insert("scheduler".into(), table(&self.scheduler).into());
        if !self.breaker.is_empty() {
            root.insert("breaker".into(), table(&self.breaker).into());
        }
        toml::to_string(&root).context("cannot write the runner's TOML")
    }

    /// The runner's whole environment (nothing else is inherited).
    pub fn env(&self, database_url: &str, router_url: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".to_string(), database_url.to_string()),
            ("ROUTER_URL".to_string(), router_url.to_string()),
            (
                "RUNNER_SIGNING_KEY".to_string(),
                encode_signing_key(&self.receipt_key),
            ),
            ("RUNNER_ADMIN_TOKEN".to_string(), ADMIN_TOKEN.to_string()),
            ("ROUTER_TOKEN".to_string(), INFERENCE_TOKEN.to_string()),
            (
                "RUST_LOG".to_string(),
                std::env::var("BEACON_DRILLS_RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            ),
        ];
        if let Some(s) = self.router_timeout_secs {
            env.push(("ROUTER_TIMEOUT".to_string(), s.to_string()));
        }
        env.extend(self.extra_env.iter().cloned());
        env
    }
}

fn table(map: &BTreeMap<String, toml::Value>) -> toml::Table {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A router child's settings: one Modal provider per simulator.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Consecutive provider failures that eject a provider.
    pub unhealthy_after: u32,
    pub eject_base: String,
    pub eject_max: String,
    /// Per provider: calls at once, the wait for a slot, one call's limit.
    pub max_concurrency: u32,
    pub queue_timeout: String,
    pub request_timeout: String,
    /// Models every provider serves.
    pub models: Vec<String>,
    /// More variables for the child (the traces drill's `OTEL_*`).
    pub extra_env: Vec<(String, String)>,
}

impl Default for RouterSettings {
    /// Generous limits (the runner's are the ones under drill), short ejections, probes
    /// once at start and then hourly.
    fn default() -> Self {
        RouterSettings {
            unhealthy_after: 3,
            eject_base: "300ms".into(),
            eject_max: "1s".into(),
            max_concurrency: 256,
            queue_timeout: "30s".into(),
            request_timeout: "60s".into(),
            models: crate::spec::MODELS.iter().map(|m| m.to_string()).collect(),
            extra_env: Vec::new(),
        }
    }
}

impl RouterSettings {
    /// The router's TOML for `providers` = `(region, simulator URL)`.
    pub fn toml(&self, providers: &[(String, String)]) -> anyhow::Result<String> {
        let mut root = toml::Table::new();
        root.insert("listen".into(), "127.0.0.1:0".into());
        let mut auth = toml::Table::new();
        auth.insert("inference_token_env".into(), INFERENCE_TOKEN_ENV.into());
        root.insert("auth".into(), auth.into());
        let mut health = toml::Table::new();
        health.insert("probe_interval".into(), "1h".into());
        health.insert("probe_timeout".into(), "5s".into());
        health.insert("probe_prompt".into(), PROBE_PROMPT.into());
        health.insert(
            "unhealthy_after".into(),
            i64::from(self.unhealthy_after).into(),
        );
        health.insert("eject_base".into(), self.eject_base.clone().into());
        health.insert("eject_max".into(), self.eject_max.clone().into());
        root.insert("health".into(), health.into());
        let list: Vec<toml::Value> = providers
            .iter()
            .map(|(region, url)| {
                let mut p = toml::Table::new();
                p.insert("name".into(), format!("sim-{region}").into());
                p.insert("kind".into(), "modal".into());
                p.insert("region".into(), region.clone().into());
                p.insert(
                    "url".into(),
                    format!("{}/", url.trim_end_matches('/')).into(),
                );
                p.insert("models".into(), self.models.clone().into());
                p.insert(
                    "max_concurrency".into(),
                    i64::from(self.max_concurrency).into(),
                );
                p.insert("queue_timeout".into(), self.queue_timeout.clone().into());
                p.insert(
                    "request_timeout".into(),
                    self.request_timeout.clone().into(),
                );
                p.into()
            })
            .collect();
        root.insert("providers".into(), list.into());
        toml::to_string(&root).context("cannot write the router's TOML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_toml_reads_back_with_overrides() {
        let s = RunnerSettings::fast("runner-a")
            .scheduler("lease", "2s")
            .scheduler("max_concurrency_per_job", 16)
            .breaker("failure_threshold", 50);
        let text = s.toml().unwrap_or_else(|e| panic!("{e}"));
        let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["instance_id"].as_str(), Some("runner-a"));
        assert_eq!(v["scheduler"]["lease"].as_str(), Some("2s"));
        assert_eq!(v["scheduler"]["heartbeat"].as_str(), Some("500ms"));
        assert_eq!(
            v["scheduler"]["max_concurrency_per_job"].as_integer(),
            Some(16)
        );
        assert_eq!(v["breaker"]["failure_threshold"].as_integer(), Some(50));
        let env = s.env("postgres://x", "http://r");
        assert!(
            env.iter()
                .any(|(k, v)| k == "ROUTER_URL" && v == "http://r")
        );
        // Instances differ in their receipt keys.
        assert_ne!(
            s.receipt_public_key(),
            RunnerSettings::fast("runner-b").receipt_public_key()
        );
    }

    #[test]
    fn router_toml_has_one_provider_per_simulator() {
        let text = RouterSettings::default()
            .toml(&[("eu-west".into(), "http://127.0.0.1:1".into())])
            .unwrap_or_else(|e| panic!("{e}"));
        let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let p = &v["providers"][0];
        assert_eq!(p["url"].as_str(), Some("http://127.0.0.1:1/"));
        assert_eq!(p["region"].as_str(), Some("eu-west"));
        assert_eq!(v["health"]["probe_prompt"].as_str(), Some(PROBE_PROMPT));
    }
}
