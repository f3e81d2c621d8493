//! The configuration file's tables (`[signatures]`, `[scheduler]`, `[breaker]`,
//! `[limits]`) with their defaults and the checks that name the offending key.

use std::time::Duration;

use beacon_core::duration::parse_duration;
use serde::{Deserialize, Deserializer};

use super::{ConfigError, err};

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Whether job specs must be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignaturePolicy {
    Required,
    Optional,
}

/// `[signatures]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignatureConfig {
    pub policy: SignaturePolicy,
    /// Base64 public keys allowed to submit; empty = any valid key.
    pub trusted_keys: Vec<String>,
    /// How far `metadata.timestamp` may be from now.
    #[serde(deserialize_with = "de_duration")]
    pub max_clock_skew: Duration,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            policy: SignaturePolicy::Required,
            trusted_keys: Vec::new(),
            max_clock_skew: Duration::from_secs(600),
        }
    }
}

/// `[scheduler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// `false` makes an API-only instance: it accepts and serves jobs, another
    /// instance on the same database runs them.
    pub enabled: bool,
    /// Router calls in flight from this instance, all jobs together.
    pub max_concurrency: u32,
    /// Router calls in flight for one job.
    pub max_concurrency_per_job: u32,
    /// Router calls in flight to one region from this instance.
    pub max_concurrency_per_region: u32,
    /// Jobs this instance runs at once.
    pub max_jobs: u32,
    /// Attempts per execution (first try included) for transient failures.
    pub max_attempts: u32,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_base: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_max: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub lease: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub heartbeat: Duration,
    /// How often idle instances look for claimable jobs.
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// How long SIGTERM waits for in-flight work to be handed back.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Hard bound on attempts of one execution over its whole life (restarts, hand-backs,
    /// retry-failed rounds and free waits included): an execution dispatched with this
    /// many already made fails with `ATTEMPTS_EXHAUSTED` and nothing more is bought.
    /// `max_attempts` is the budget of one run; this is the safety net behind it.
    pub max_total_attempts: u32,
    /// How long one execution may wait, in all, for its region to become routable
    /// again (`NO_HEALTHY_PROVIDER` / `OVERLOADED` answered before any provider was
    /// called, or a router that refuses connections) without spending its attempts:
    /// nothing was bought, so waiting is free. Within the job's deadline.
    #[serde(deserialize_with = "de_duration")]
    pub max_wait_for_provider: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            max_concurrency: 64,
            max_concurrency_per_job: 32,
            max_concurrency_per_region: 32,
            max_jobs: 8,
            max_attempts: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
            max_total_attempts: 25,
            max_wait_for_provider: Duration::from_secs(600),
        }
    }
}

/// `[breaker]`: the circuit breaker on the router client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive router-level failures (unreachable, timeouts, 5xx without an answer)
    /// that open the breaker.
    pub failure_threshold: u32,
    #[serde(deserialize_with = "de_duration")]
    pub open_for: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(2),
            max_open_for: Duration::from_secs(60),
        }
    }
}

pub(super) fn check_scheduler(s: &SchedulerConfig) -> Result<(), ConfigError> {
    for (key, v) in [
        ("scheduler.max_concurrency", s.max_concurrency),
        (
            "scheduler.max_concurrency_per_job",
            s.max_concurrency_per_job,
        ),
        (
            "scheduler.max_concurrency_per_region",
            s.max_concurrency_per_region,
        ),
        ("scheduler.max_jobs", s.max_jobs),
        ("scheduler.max_attempts", s.max_attempts),
        ("scheduler.max_total_attempts", s.max_total_attempts),
    ] {
        if v == 0 {
            return Err(err(key, "must be at least 1"));
        }
    }
    if s.heartbeat >= s.lease {
        return Err(err(
            "scheduler.heartbeat",
            "must be shorter than scheduler.lease",
        ));
    }
    if s.max_total_attempts < s.max_attempts {
        return Err(err(
            "scheduler.max_total_attempts",
            "must be at least scheduler.max_attempts",
        ));
    }
    if s.backoff_max < s.backoff_base {
        return Err(err(
            "scheduler.backoff_max",
            "must be at least backoff_base",
        ));
    }
    Ok(())
}

/// `[limits]`: how much the runner reads from the router and keeps per execution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Bytes of one `/inference` answer read from the router; more is cut off unread
    /// and the attempt fails with `ROUTER_RESPONSE_TOO_LARGE`. The router's answer
    /// carries the text twice (the answer and the provider's receipt) plus provenance.
    pub max_router_body_bytes: u64,
    /// Bytes of answer text one execution stores; a longer answer fails with
    /// `ROUTER_RESPONSE_TOO_LARGE` instead of being kept (a model asked for
    /// `max_tokens` tokens answers in kilobytes).
    pub max_answer_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_router_body_bytes: 2 << 20,
            max_answer_bytes: 512 << 10,
        }
    }
}

impl LimitsConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_answer_bytes == 0 {
            return Err(err("limits.max_answer_bytes", "must be at least 1"));
        }
        if self.max_router_body_bytes < self.max_answer_bytes {
            return Err(err(
                "limits.max_router_body_bytes",
                "must be at least limits.max_answer_bytes (the body carries the answer)",
            ));
        }
        Ok(())
    }
}
