//! One `[[providers]]` table: its raw TOML form, its validation (every refusal names
//! the key, `providers[i].field`) and the validated `ProviderConfig` the clients use.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_core::{ModelId, Region};
use serde::Deserialize;

use super::{ConfigError, LimitsConfig, check_bytes, de_duration, err, resolve_env};

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
pub(super) struct RawProvider {
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
    /// Overrides `[limits] max_response_bytes` for this provider.
    max_response_bytes: Option<u64>,
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
    /// Largest answer body read from this provider, in bytes.
    pub max_response_bytes: u64,
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

pub(super) fn validate_provider(
    i: usize,
    p: RawProvider,
    limits: &LimitsConfig,
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
    let max_response_bytes = p.max_response_bytes.unwrap_or(limits.max_response_bytes);
    check_bytes(&key("max_response_bytes"), max_response_bytes)?;
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
        max_response_bytes,
    })
}
