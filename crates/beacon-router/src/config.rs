//! Router configuration: a strict TOML file plus environment. Unknown keys, missing
//! `*_env` variables and contradictions are errors that name the key; the process
//! exits 64 on them. A secret-free summary says what the router runs with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use beacon_core::duration::parse_duration;
use beacon_core::{ModelId, Region};
use serde::{Deserialize, Deserializer};

pub use beacon_service::ConfigError;
use beacon_service::config_error as err;

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The `[health]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    #[serde(deserialize_with = "de_duration")]
    pub probe_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub probe_timeout: Duration,
    pub probe_prompt: String,
    pub probe_max_tokens: u32,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    #[serde(deserialize_with = "de_duration")]
    pub skip_probe_if_live_success_within: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub eject_base: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub eject_max: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(180),
            probe_prompt: "Reply with the single word OK.".into(),
            probe_max_tokens: 1,
            unhealthy_after: 3,
            healthy_after: 1,
            skip_probe_if_live_success_within: Duration::from_secs(30),
            eject_base: Duration::from_secs(30),
            eject_max: Duration::from_secs(600),
        }
    }
}

/// The two provider contracts the router speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Modal,
    Openai,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Modal => "modal",
            ProviderKind::Openai => "openai",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ModelsField {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    kind: ProviderKind,
    region: String,
    url: String,
    models: ModelsField,
    probe_model: Option<String>,
    #[serde(default = "default_max_concurrency")]
    max_concurrency: u32,
    #[serde(default = "default_queue_timeout", deserialize_with = "de_duration")]
    queue_timeout: Duration,
    #[serde(default = "default_request_timeout", deserialize_with = "de_duration")]
    request_timeout: Duration,
    #[serde(default)]
    cost_per_second: f64,
    auth_header_env: Option<String>,
}

fn default_max_concurrency() -> u32 {
    4
}
fn default_queue_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    admin_token_env: Option<String>,
    #[serde(default)]
    health: HealthConfig,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

fn default_listen() -> String {
    "0.0.0.0:8000".into()
}

/// One model a provider serves: the id clients use and the name sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    pub id: ModelId,
    pub upstream: String,
}

/// A validated provider.
#[derive(Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub region: Region,
    pub url: reqwest::Url,
    pub models: Vec<ServedModel>,
    pub probe_model: ModelId,
    pub max_concurrency: u32,
    pub queue_timeout: Duration,
    pub request_timeout: Duration,
    pub cost_per_second: f64,
    /// The bearer token, resolved from `auth_header_env`. Never printed.
    pub auth_token: Option<String>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("region", &self.region)
            .field("auth", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    pub fn upstream_model(&self, id: &str) -> Option<&str> {
        self.models
            .iter()
            .find(|m| m.id.as_str() == id)
            .map(|m| m.upstream.as_str())
    }
}

/// The router's whole validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Admin routes are off when `None`.
    pub admin_token: Option<String>,
    pub health: HealthConfig,
    pub providers: Vec<ProviderConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl Config {
    /// Reads a file, then applies the environment (`PORT`).
    pub fn from_file(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text, env)
    }

    /// Parses and validates TOML text; `env` resolves `*_env` names and `PORT`.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| beacon_service::toml_error(text, &e))?;
        let mut listen: SocketAddr = raw
            .listen
            .parse()
            .map_err(|e| err("listen", format!("{:?} is not an address: {e}", raw.listen)))?;
        if let Some(port) = env("PORT").filter(|p| !p.is_empty()) {
            listen.set_port(
                port.parse()
                    .map_err(|_| err("PORT", format!("{port:?} is not a port")))?,
            );
        }
        let admin_token = match &raw.admin_token_env {
            None => None,
            Some(var) => Some(resolve_env(env, "admin_token_env", var)?),
        };
        check_health(&raw.health)?;
        if raw.providers.is_empty() {
            return Err(err(
                "providers",
                "no providers configured; add at least one [[providers]] table",
            ));
        }
        let mut providers: Vec<ProviderConfig> = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.into_iter().enumerate() {
            let provider = validate_provider(i, p, env)?;
            if providers.iter().any(|q| q.name == provider.name) {
                return Err(err(
                    format!("providers[{i}].name"),
                    format!("duplicate provider name {:?}", provider.name),
                ));
            }
            providers.push(provider);
        }
        Ok(Config {
            listen,
            admin_token,
            health: raw.health,
            providers,
        })
    }

    /// Regions that have at least one provider, in first-seen order.
    pub fn regions(&self) -> Vec<Region> {
        let mut out: Vec<Region> = Vec::new();
        for p in &self.providers {
            if !out.contains(&p.region) {
                out.push(p.region.clone());
            }
        }
        out
    }

    /// What the router runs with, safe to log: no URLs with credentials, no tokens.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "listen={} admin_routes={} probe_interval={:?} probe_timeout={:?} unhealthy_after={} providers={}",
            self.listen,
            if self.admin_token.is_some() {
                "on"
            } else {
                "off"
            },
            self.health.probe_interval,
            self.health.probe_timeout,
            self.health.unhealthy_after,
            self.providers.len()
        );
        for p in &self.providers {
            let models: Vec<&str> = p.models.iter().map(|m| m.id.as_str()).collect();
            s.push_str(&format!(
                "\n  provider {} kind={} region={} host={} models=[{}] max_concurrency={} auth={}",
                p.name,
                p.kind.as_str(),
                p.region,
                p.url.host_str().unwrap_or("?"),
                models.join(","),
                p.max_concurrency,
                if p.auth_token.is_some() {
                    "set"
                } else {
                    "none"
                }
            ));
        }
        s
    }
}

fn resolve_env(
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
    var: &str,
) -> Result<String, ConfigError> {
    env(var)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| err(key, format!("environment variable {var} is not set")))
}

fn check_health(h: &HealthConfig) -> Result<(), ConfigError> {
    if h.probe_interval.is_zero() {
        return Err(err("health.probe_interval", "must be longer than 0"));
    }
    if h.probe_timeout.is_zero() {
        return Err(err("health.probe_timeout", "must be longer than 0"));
    }
    if h.unhealthy_after == 0 {
        return Err(err("health.unhealthy_after", "must be at least 1"));
    }
    if h.healthy_after == 0 {
        return Err(err("health.healthy_after", "must be at least 1"));
    }
    if h.eject_max < h.eject_base {
        return Err(err("health.eject_max", "must be at least eject_base"));
    }
    if h.probe_max_tokens == 0 {
        return Err(err("health.probe_max_tokens", "must be at least 1"));
    }
    Ok(())
}

fn validate_provider(
    i: usize,
    p: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProviderConfig, ConfigError> {
    let key = |field: &str| format!("providers[{i}].{field}");
    if !beacon_core::region::is_slug(&p.name) {
        return Err(err(
            key("name"),
            format!("{:?} must be a lower-case slug like modal-eu-west", p.name),
        ));
    }
    let region = Region::parse(&p.region).map_err(|e| err(key("region"), e.to_string()))?;
    let url =
        reqwest::Url::parse(&p.url).map_err(|e| err(key("url"), format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(key("url"), "must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            key("url"),
            "must not carry credentials; use auth_header_env",
        ));
    }
    let pairs: Vec<(String, String)> = match p.models {
        ModelsField::List(ids) => ids.into_iter().map(|m| (m.clone(), m)).collect(),
        ModelsField::Map(map) => map.into_iter().collect(),
    };
    if pairs.is_empty() {
        return Err(err(key("models"), "the model list is empty"));
    }
    let mut models: Vec<ServedModel> = Vec::with_capacity(pairs.len());
    for (id, upstream) in pairs {
        let id = ModelId::parse(&id).map_err(|e| err(key("models"), e.to_string()))?;
        if !models.iter().any(|m| m.id == id) {
            models.push(ServedModel { id, upstream });
        }
    }
    let probe_model = match p.probe_model {
        None => models[0].id.clone(),
        Some(m) => models
            .iter()
            .find(|s| s.id.as_str() == m)
            .map(|s| s.id.clone())
            .ok_or_else(|| {
                err(
                    key("probe_model"),
                    format!("{m:?} is not one of this provider's models"),
                )
            })?,
    };
    if p.max_concurrency == 0 {
        return Err(err(key("max_concurrency"), "must be at least 1"));
    }
    if p.request_timeout.is_zero() {
        return Err(err(key("request_timeout"), "must be longer than 0"));
    }
    if !(p.cost_per_second.is_finite() && p.cost_per_second >= 0.0) {
        return Err(err(key("cost_per_second"), "must be a number ≥ 0"));
    }
    let auth_token = match &p.auth_header_env {
        None => None,
        Some(var) => Some(resolve_env(env, &key("auth_header_env"), var)?),
    };
    Ok(ProviderConfig {
        name: p.name,
        kind: p.kind,
        region,
        url,
        models,
        probe_model,
        max_concurrency: p.max_concurrency,
        queue_timeout: p.queue_timeout,
        request_timeout: p.request_timeout,
        cost_per_second: p.cost_per_second,
        auth_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const ONE: &str = r#"
        listen = "127.0.0.1:0"
        [[providers]]
        name = "sim-eu-west"
        kind = "modal"
        region = "EU"
        url = "http://127.0.0.1:9/"
        models = ["llama3.2-1b", "mistral-7b"]
    "#;

    #[test]
    fn a_minimal_file_reads_with_defaults() {
        let c = Config::from_toml(ONE, &no_env).unwrap();
        let p = &c.providers[0];
        assert_eq!(
            (p.region.as_str(), p.probe_model.as_str()),
            ("eu-west", "llama3.2-1b")
        );
        assert_eq!(c.health.unhealthy_after, 3);
        assert!(c.admin_token.is_none());
        assert!(!c.summary().contains("http://"), "{}", c.summary());
    }

    #[test]
    fn the_deploy_example_is_valid() {
        let text = include_str!("../../../deploy/router.example.toml");
        let env =
            |k: &str| matches!(k, "ROUTER_ADMIN_TOKEN" | "MODAL_TOKEN").then(|| "t".to_string());
        let c = Config::from_toml(text, &env).unwrap();
        let regions: Vec<String> = c.regions().iter().map(|r| r.to_string()).collect();
        assert_eq!(regions, ["us-east", "eu-west", "asia-pacific"]);
        assert!(
            Config::from_toml(text, &no_env).is_err(),
            "tokens are required"
        );
    }

    #[test]
    fn port_overrides_the_listen_port() {
        let env = |k: &str| (k == "PORT").then(|| "8123".to_string());
        assert_eq!(Config::from_toml(ONE, &env).unwrap().listen.port(), 8123);
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (format!("{ONE}\ncolour = 1"), "line"),
            (
                ONE.replace("kind = \"modal\"", "kind = \"modal\"\nsurprise = true"),
                "line",
            ),
            ("listen = \"127.0.0.1:0\"".to_string(), "providers"),
            (
                format!("{ONE}{}", &ONE[ONE.find("[[providers]]").unwrap()..]),
                "providers[1].name",
            ),
            (
                ONE.replace("region = \"EU\"", "region = \"Mars Base\""),
                "providers[0].region",
            ),
            (
                ONE.replace("[\"llama3.2-1b\", \"mistral-7b\"]", "[]"),
                "providers[0].models",
            ),
            (
                ONE.replace("models =", "auth_header_env = \"NOPE_TOKEN\"\nmodels ="),
                "providers[0].auth_header_env",
            ),
            (
                format!("admin_token_env = \"NOPE_ADMIN\"\n{ONE}"),
                "admin_token_env",
            ),
            (
                ONE.replace("http://127.0.0.1:9/", "http://u:p@127.0.0.1:9/"),
                "providers[0].url",
            ),
            (
                ONE.replace("models =", "probe_model = \"qwen\"\nmodels ="),
                "providers[0].probe_model",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(&text, &no_env).unwrap_err();
            assert!(e.key.starts_with(key), "want {key}, got {e}");
        }
    }

    #[test]
    fn env_names_resolve_and_models_may_map_to_upstream_names() {
        let text = ONE
            .replace("models = [\"llama3.2-1b\", \"mistral-7b\"]", "models = { \"llama3.2-1b\" = \"meta-llama/Llama-3.2-1B-Instruct\" }\nauth_header_env = \"EU_TOKEN\"");
        let env = |k: &str| (k == "EU_TOKEN").then(|| "s3cret".to_string());
        let c = Config::from_toml(&text, &env).unwrap();
        assert_eq!(
            c.providers[0].upstream_model("llama3.2-1b"),
            Some("meta-llama/Llama-3.2-1B-Instruct")
        );
        assert_eq!(c.providers[0].auth_token.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?} {:?}", c.providers[0]).contains("s3cret"));
    }
}
