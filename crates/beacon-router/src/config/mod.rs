//! Router configuration: a strict TOML file plus environment. Unknown keys, missing
//! `*_env` variables and contradictions are errors that name the key; the process
//! exits 64 on them. A secret-free summary says what the router runs with.

mod auth;
mod cors;
mod provider;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use beacon_core::Region;
use beacon_core::duration::parse_duration;
use serde::{Deserialize, Deserializer};

pub use auth::{InferenceAuth, MIN_TOKEN_LEN};
use beacon_service::config_error as err;
pub use beacon_service::{ConfigError, ServerConfig};
pub use cors::{CorsOrigins, DEFAULT_CORS_ORIGINS};
pub use provider::{ProviderConfig, ProviderKind, ServedModel};
use provider::{RawProvider, validate_provider};

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

/// Default bound on a provider answer the router reads (1 MiB). A model answer of
/// `max_tokens` tokens is kilobytes (the spec's default is 500 tokens; 1 MiB is about
/// 250,000 tokens of text, twice over with Modal's receipt); the bound keeps the memory
/// of many concurrent calls small and matches the runner's `max_router_body_bytes`
/// (2 MiB: the router's answer carries the text twice).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Default bound on a client's request body (1 MiB); prompts are at most 8 KiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1024 * 1024;
/// Largest byte limit accepted: anything bigger is a typo, not a bound.
pub const MAX_BYTE_LIMIT: u64 = 1 << 30;

/// The `[limits]` table: how much the router reads from anyone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest provider answer read, in bytes; a provider may lower or raise its own.
    pub max_response_bytes: u64,
    /// Largest `POST /inference` or `/v1/chat/completions` body read, in bytes.
    pub max_request_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// Default bound on the bytes the `Idempotency-Key` cache holds (64 MiB).
pub const DEFAULT_IDEMPOTENCY_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The `[idempotency]` table: how long, and how many bytes of, answers are kept for
/// repeats of an `Idempotency-Key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// How long an answer is kept after it was stored; then it is dropped.
    #[serde(deserialize_with = "de_duration")]
    pub ttl: Duration,
    /// Bytes of kept answers (with their keys) at most; the least recently used go
    /// first. Also bounds the number of keys: each weighs at least a few hundred bytes.
    pub max_bytes: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            ttl: Duration::from_secs(600),
            max_bytes: DEFAULT_IDEMPOTENCY_MAX_BYTES,
        }
    }
}

/// A byte limit must be at least 1 and at most [`MAX_BYTE_LIMIT`].
fn check_bytes(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(err(key, "must be at least 1 byte"));
    }
    if value > MAX_BYTE_LIMIT {
        return Err(err(
            key,
            format!("must be at most {MAX_BYTE_LIMIT} bytes (1 GiB), got {value}"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    admin_token_env: Option<String>,
    /// Browser origins allowed to read `/health` and `/providers`.
    cors_origins: Option<Vec<String>>,
    #[serde(default)]
    health: HealthConfig,
    #[serde(default)]
    limits: LimitsConfig,
    /// Connection timeouts and limits (beacon_service::ServerConfig).
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    auth: auth::RawAuth,
    #[serde(default)]
    idempotency: IdempotencyConfig,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

fn default_listen() -> String {
    "0.0.0.0:8000".into()
}

/// The router's whole validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Admin routes are off when `None`.
    pub admin_token: Option<String>,
    /// Who may read `/health` and `/providers` from a browser (`CORS_ORIGINS` wins).
    pub cors_origins: CorsOrigins,
    pub health: HealthConfig,
    pub limits: LimitsConfig,
    /// Who may call the inference routes (`[auth]`).
    pub inference_auth: InferenceAuth,
    pub idempotency: IdempotencyConfig,
    /// `[server]`: connection timeouts and limits.
    pub server: ServerConfig,
    pub providers: Vec<ProviderConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl Config {
    /// Reads a file, then applies the environment (`PORT`, `CORS_ORIGINS`).
    pub fn from_file(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text, env)
    }

    /// Parses and validates TOML text; `env` resolves `*_env` names, `PORT` and
    /// `CORS_ORIGINS`.
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
        let cors_origins = cors::read(raw.cors_origins.as_deref(), env)?;
        check_health(&raw.health)?;
        let mut raw = raw;
        if let Some(warning) = coherent_skip(&mut raw.health) {
            tracing::warn!("{warning}");
        }
        check_bytes("limits.max_response_bytes", raw.limits.max_response_bytes)?;
        check_bytes("limits.max_request_bytes", raw.limits.max_request_bytes)?;
        let inference_auth = auth::read(&raw.auth, env)?;
        if raw.idempotency.ttl.is_zero() {
            return Err(err("idempotency.ttl", "must be longer than 0"));
        }
        check_bytes("idempotency.max_bytes", raw.idempotency.max_bytes)?;
        raw.server.check()?;
        if raw.providers.is_empty() {
            return Err(err(
                "providers",
                "no providers configured; add at least one [[providers]] table",
            ));
        }
        let mut providers: Vec<ProviderConfig> = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.into_iter().enumerate() {
            let provider = validate_provider(i, p, &raw.limits, env)?;
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
            cors_origins,
            health: raw.health,
            limits: raw.limits,
            inference_auth,
            idempotency: raw.idempotency,
            server: raw.server,
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
            "listen={} inference_auth={} admin_routes={} cors={} probe_interval={:?} probe_timeout={:?} unhealthy_after={} max_request_bytes={} idempotency(ttl/max_bytes)={:?}/{} {} providers={}",
            self.listen,
            self.inference_auth.describe(),
            if self.admin_token.is_some() {
                "on"
            } else {
                "off"
            },
            self.cors_origins.describe(),
            self.health.probe_interval,
            self.health.probe_timeout,
            self.health.unhealthy_after,
            self.limits.max_request_bytes,
            self.idempotency.ttl,
            self.idempotency.max_bytes,
            self.server.summary(),
            self.providers.len()
        );
        for p in &self.providers {
            let models: Vec<&str> = p.models.iter().map(|m| m.id.as_str()).collect();
            s.push_str(&format!(
                "\n  provider {} kind={} region={} host={} models=[{}] max_concurrency={} max_response_bytes={} auth={}",
                p.name,
                p.kind.as_str(),
                p.region,
                p.url.host_str().unwrap_or("?"),
                models.join(","),
                p.max_concurrency,
                p.max_response_bytes,
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

/// Keeps `skip_probe_if_live_success_within` at most one `probe_interval`, clamping a
/// longer value and saying so (the returned warning names the key).
///
/// Why: a provider's evidence is stale after three probe intervals without any
/// (`ProviderHealth::is_stale`). A live success suppresses probes for the skip window;
/// when it ends, the next probe tick comes up to 1.1 intervals later (±10 % jitter) and
/// the probe needs time to answer. Only a skip of at most one interval leaves that room
/// inside the staleness window, so a provider that broke right after its last live
/// success is re-tested before it could be shown `healthy` on stale evidence. The
/// defaults (30 s and 30 s) satisfy it; short test and demo intervals get clamped.
pub fn coherent_skip(h: &mut HealthConfig) -> Option<String> {
    if h.skip_probe_if_live_success_within <= h.probe_interval {
        return None;
    }
    let asked = h.skip_probe_if_live_success_within;
    h.skip_probe_if_live_success_within = h.probe_interval;
    Some(format!(
        "health.skip_probe_if_live_success_within ({asked:?}) is longer than health.probe_interval \
         ({:?}): clamped to {:?} so the state shown is never older than the staleness window \
         (3 x probe_interval)",
        h.probe_interval, h.probe_interval
    ))
}

#[cfg(test)]
mod tests;
