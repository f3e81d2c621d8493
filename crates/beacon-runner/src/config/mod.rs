//! Runner configuration: an optional strict TOML file (`--config`,
//! `BEACON_RUNNER_CONFIG`) and the environment, which wins. The router URL is required
//! and may come under the previous deployment's names; two of them disagreeing is an
//! error. Every error names the key; the binary exits 64 on them. There is no silent
//! fallback executor.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use beacon_core::duration::parse_duration;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Deserializer};

use beacon_service::config_error as err;
pub use beacon_service::{ConfigError, ServerConfig};

mod judge;
mod sections;

pub use judge::JudgeConfig;
use sections::check_scheduler;
pub use sections::{
    BreakerConfig, LimitsConfig, SchedulerConfig, SignatureConfig, SignaturePolicy,
};

/// Environment names of the router URL, in the order they are reported.
pub const ROUTER_URL_KEYS: [&str; 3] = ["ROUTER_URL", "HYBRID_ROUTER_URL", "HYBRID_BASE"];
/// Environment name of the router's inference token (the router's `[auth]`).
pub const ROUTER_TOKEN_KEY: &str = "ROUTER_TOKEN";
/// Environment names of the router timeout (seconds).
pub const ROUTER_TIMEOUT_KEYS: [&str; 3] =
    ["ROUTER_TIMEOUT", "HYBRID_ROUTER_TIMEOUT", "HYBRID_TIMEOUT"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    router_url: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    router_timeout: Option<Duration>,
    /// Name of the environment variable holding the router's inference token
    /// (`ROUTER_TOKEN` itself wins when set).
    router_token_env: Option<String>,
    instance_id: Option<String>,
    cors_origins: Option<Vec<String>>,
    /// Job submissions per minute per client address.
    submissions_per_minute: Option<u32>,
    #[serde(default)]
    signatures: SignatureConfig,
    #[serde(default)]
    scheduler: SchedulerConfig,
    #[serde(default)]
    breaker: BreakerConfig,
    #[serde(default)]
    limits: LimitsConfig,
    /// The optional judge model (off by default).
    #[serde(default)]
    judge: JudgeConfig,
    /// Connection timeouts and limits (beacon_service::ServerConfig).
    #[serde(default)]
    server: ServerConfig,
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub router_url: reqwest::Url,
    /// Where the router URL came from (a key name), for the summary.
    pub router_url_source: String,
    /// Upper bound of one router call; the spec's provider timeout is usually smaller.
    pub router_timeout: Duration,
    /// Sent as `Authorization: Bearer` on every router call; never logged or shown.
    pub router_token: Option<String>,
    pub instance_id: String,
    pub cors_origins: Vec<String>,
    pub submissions_per_minute: u32,
    pub signatures: SignatureConfig,
    pub scheduler: SchedulerConfig,
    pub breaker: BreakerConfig,
    pub limits: LimitsConfig,
    /// `[judge]`: the optional judge model.
    pub judge: JudgeConfig,
    /// `[server]`: connection timeouts and limits.
    pub server: ServerConfig,
    pub admin_token: Option<String>,
    /// `RUNNER_CONTROL_TOKEN`: when set, cancel, retry and execute need it as a bearer
    /// token (the admin token also passes). Unset, those routes stay open for the portal.
    pub control_token: Option<String>,
    /// Signs receipts. `None` in the file means "generate one at start" (logged).
    pub signing_key: Option<SigningKey>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Local development origins the portal runs on, allowed unless `CORS_ORIGINS` says otherwise.
const DEFAULT_CORS: [&str; 4] = [
    "http://localhost:3000",
    "http://localhost:5173",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:5173",
];

impl Config {
    /// Reads the optional file, then the environment.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?,
            None => String::new(),
        };
        Config::from_toml(&text, env)
    }

    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| beacon_service::toml_error(text, &e))?;
        let env = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let (router_url_text, router_url_source) = router_url(&env, raw.router_url.as_deref())?;
        let router_url = reqwest::Url::parse(&router_url_text).map_err(|e| {
            err(
                &router_url_source,
                format!("{router_url_text:?} is not a URL: {e}"),
            )
        })?;
        if !matches!(router_url.scheme(), "http" | "https") {
            return Err(err(&router_url_source, "must be an http or https URL"));
        }
        let router_timeout = match first_env(&env, &ROUTER_TIMEOUT_KEYS)? {
            Some((key, v)) => Duration::from_secs_f64(
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
                    .ok_or_else(|| err(key, format!("{v:?} is not a number of seconds")))?,
            ),
            None => raw.router_timeout.unwrap_or(Duration::from_secs(660)),
        };

        let router_token = router_token(&env, raw.router_token_env.as_deref())?;

        let listen_text = raw.listen.unwrap_or_else(|| "0.0.0.0:8080".into());
        let mut listen: SocketAddr = listen_text
            .parse()
            .map_err(|e| err("listen", format!("{listen_text:?} is not an address: {e}")))?;
        if let Some(port) = env("PORT") {
            listen.set_port(
                port.parse()
                    .map_err(|_| err("PORT", format!("{port:?} is not a port")))?,
            );
        }
        let database_url = env("DATABASE_URL")
            .or(raw.database_url)
            .unwrap_or_else(|| "sqlite://beacon.db".into());
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(err("DATABASE_URL", "use postgres://… or sqlite://PATH"));
        }
        let cors_origins = match env("CORS_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => raw
                .cors_origins
                .unwrap_or_else(|| DEFAULT_CORS.iter().map(|s| s.to_string()).collect()),
        };
        let signing_key = match env("RUNNER_SIGNING_KEY") {
            Some(text) => Some(beacon_core::signing::parse_signing_key(&text).map_err(|e| {
                err(
                    "RUNNER_SIGNING_KEY",
                    format!("{e} (base64 of a 32-byte Ed25519 seed; `beacon keygen` makes one)"),
                )
            })?),
            None => None,
        };
        for (i, k) in raw.signatures.trusted_keys.iter().enumerate() {
            beacon_core::signing::parse_public_key(k)
                .map_err(|e| err(format!("signatures.trusted_keys[{i}]"), e.to_string()))?;
        }
        check_scheduler(&raw.scheduler)?;
        if raw.breaker.failure_threshold == 0 {
            return Err(err("breaker.failure_threshold", "must be at least 1"));
        }
        raw.limits.check()?;
        let mut judge = raw.judge;
        judge.check()?;
        raw.server.check()?;
        let instance_id = raw.instance_id.unwrap_or_else(default_instance_id);
        Ok(Config {
            listen,
            database_url,
            router_url,
            router_url_source,
            router_timeout,
            router_token,
            instance_id,
            cors_origins,
            submissions_per_minute: raw.submissions_per_minute.unwrap_or(120),
            signatures: raw.signatures,
            scheduler: raw.scheduler,
            breaker: raw.breaker,
            limits: raw.limits,
            judge,
            server: raw.server,
            admin_token: env("RUNNER_ADMIN_TOKEN"),
            control_token: env("RUNNER_CONTROL_TOKEN"),
            signing_key,
        })
    }

    /// What the runner runs with, safe to log.
    pub fn summary(&self) -> String {
        let db = beacon_service::redact::connection_string(&self.database_url);
        format!(
            "instance={} listen={} database={} router={} (from {}) router_timeout={:?} router_token={} signatures={:?} trusted_keys={} \
             concurrency(instance/job/region)={}/{}/{} max_attempts={} lease={:?} admin_routes={} control_token={} receipt_key={} cors={} {} {}",
            self.instance_id,
            self.listen,
            db,
            beacon_service::redact::connection_string(self.router_url.as_str()),
            self.router_url_source,
            self.router_timeout,
            if self.router_token.is_some() {
                "set"
            } else {
                "not set"
            },
            self.signatures.policy,
            self.signatures.trusted_keys.len(),
            self.scheduler.max_concurrency,
            self.scheduler.max_concurrency_per_job,
            self.scheduler.max_concurrency_per_region,
            self.scheduler.max_attempts,
            self.scheduler.lease,
            if self.admin_token.is_some() {
                "on"
            } else {
                "off"
            },
            if self.control_token.is_some() {
                "required for cancel/retry/execute"
            } else {
                "off"
            },
            if self.signing_key.is_some() {
                "RUNNER_SIGNING_KEY"
            } else {
                "generated at start (set RUNNER_SIGNING_KEY to keep it)"
            },
            self.cors_origins.join(","),
            self.judge.summary(),
            self.server.summary(),
        )
    }
}

/// The router URL from `ROUTER_URL` or its aliases, else the file. Two env names set to
/// different values is an error naming both.
fn router_url(
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&str>,
) -> Result<(String, String), ConfigError> {
    match first_env(env, &ROUTER_URL_KEYS)? {
        Some((key, v)) => Ok((v, key.to_string())),
        None => match file {
            Some(v) if !v.trim().is_empty() => Ok((v.trim().to_string(), "router_url".into())),
            _ => Err(err(
                "ROUTER_URL",
                "no router URL: set ROUTER_URL (or HYBRID_ROUTER_URL / HYBRID_BASE, or router_url in the config file). \
                 The runner has no fallback executor.",
            )),
        },
    }
}

/// The router's inference token: `ROUTER_TOKEN`, else the variable the file's
/// `router_token_env` names (which must then be set). None: calls carry no token (a
/// router with `allow_unauthenticated`, local use).
fn router_token(
    env: &dyn Fn(&str) -> Option<String>,
    file_var: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let token = match (env(ROUTER_TOKEN_KEY), file_var) {
        (Some(t), _) => (ROUTER_TOKEN_KEY, t),
        (None, Some(var)) => match env(var) {
            Some(t) => ("router_token_env", t),
            None => {
                return Err(err(
                    "router_token_env",
                    format!("environment variable {var} is not set"),
                ));
            }
        },
        (None, None) => return Ok(None),
    };
    let (key, value) = token;
    // It goes into an HTTP header: visible ASCII only, so a stray newline or space
    // fails here rather than as a 401 on every call.
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(key, "must be visible ASCII characters without spaces"));
    }
    Ok(Some(value))
}

/// The first set variable among `keys`; the others, when set, must agree.
fn first_env<'k>(
    env: &dyn Fn(&str) -> Option<String>,
    keys: &[&'k str],
) -> Result<Option<(&'k str, String)>, ConfigError> {
    let set: Vec<(&str, String)> = keys
        .iter()
        .filter_map(|k| env(k).map(|v| (*k, v)))
        .collect();
    if let Some((k0, v0)) = set.first() {
        for (k, v) in &set[1..] {
            if v.trim_end_matches('/') != v0.trim_end_matches('/') {
                return Err(err(
                    format!("{k0}/{k}"),
                    format!("{k0}={v0:?} and {k}={v:?} disagree; set only one"),
                ));
            }
        }
    }
    Ok(set.into_iter().next())
}

fn default_instance_id() -> String {
    let host = std::env::var("FLY_MACHINE_ID")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "runner".into());
    let mut bytes = [0u8; 3];
    let _ = getrandom::fill(&mut bytes);
    format!("{host}-{}-{}", std::process::id(), hex::encode(bytes))
}

/// Base64 of a fresh random signing key seed (what `beacon keygen` writes).
pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    let _ = getrandom::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// The standard base64 engine, for callers that print keys.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
