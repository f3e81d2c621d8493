//! One provider's health: a state machine fed only by evidence (probe and live call
//! outcomes), never by a separate health URL. Pure: the caller passes the time, so the
//! rules are tested without sleeping.
//!
//! unknown ──success──▶ healthy ──N consecutive failures──▶ unhealthy (ejected until T)
//!    └──N failures──────────────────────────────────────────▲      │ T passed: one trial
//!                                    healthy ◀──trial ok────┘◀─────┘ trial fails: eject longer

use std::collections::VecDeque;
use std::time::Duration;

use beacon_core::Failure;
use beacon_core::wire::ProviderState;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::HealthConfig;

/// How many recent latencies feed p50/p95.
const LATENCY_WINDOW: usize = 64;
/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.2;

/// How long a client is told to wait while another request's trial re-tests an ejected
/// provider: a trial is one inference, and its verdict re-admits or re-ejects at once.
pub const TRIAL_WAIT: Duration = Duration::from_secs(1);

/// May a request use this provider now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Yes: healthy or unknown.
    Open,
    /// Yes, as the single trial after an ejection; its outcome decides re-admission.
    Trial,
    /// No, with the reason a client is shown.
    Refused(String),
}

/// Everything the router knows about one provider's health.
#[derive(Debug, Clone)]
pub struct Health {
    state: ProviderState,
    reason: String,
    since: DateTime<Utc>,
    draining: bool,
    consecutive_failures: u32,
    consecutive_successes: u32,
    times_ejected: u32,
    ejected_until: Option<Instant>,
    ejected_until_wall: Option<DateTime<Utc>>,
    trial_in_flight: bool,
    last_evidence: Option<Instant>,
    last_live_success: Option<Instant>,
    pub last_probe_at: Option<DateTime<Utc>>,
    pub last_probe_ok: Option<bool>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<Failure>,
    latency_ewma: Option<f64>,
    latencies: VecDeque<f64>,
    pub requests: u64,
    pub failures: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            state: ProviderState::Unknown,
            reason: "no evidence yet: not probed and no traffic".into(),
            since: Utc::now(),
            draining: false,
            consecutive_failures: 0,
            consecutive_successes: 0,
            times_ejected: 0,
            ejected_until: None,
            ejected_until_wall: None,
            trial_in_flight: false,
            last_evidence: None,
            last_live_success: None,
            last_probe_at: None,
            last_probe_ok: None,
            last_success_at: None,
            last_failure: None,
            latency_ewma: None,
            latencies: VecDeque::with_capacity(LATENCY_WINDOW),
            requests: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> ProviderState {
        if self.draining {
            ProviderState::Draining
        } else {
            self.state
        }
    }

    pub fn reason(&self) -> &str {
        if self.draining {
            "draining: an operator took it out of rotation"
        } else {
            &self.reason
        }
    }

    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn times_ejected(&self) -> u32 {
        self.times_ejected
    }

    /// Time left in the current ejection, if ejected.
    pub fn ejection_left(&self, now: Instant) -> Option<Duration> {
        self.ejected_until.map(|t| t.saturating_duration_since(now))
    }

    pub fn ejected_until(&self) -> Option<DateTime<Utc>> {
        self.ejected_until_wall
    }

    /// Why a request may not use this provider now, or `None` if it may.
    pub fn refusal(&self, now: Instant) -> Option<String> {
        if self.draining {
            return Some(self.reason().to_string());
        }
        if self.state != ProviderState::Unhealthy {
            return None;
        }
        if self.ejected_until.is_some_and(|t| now < t) {
            Some(self.reason.clone())
        } else if self.trial_in_flight {
            Some(format!(
                "{}; a trial request is already re-testing it",
                self.reason
            ))
        } else {
            None
        }
    }

    /// When a provider that [`Health::refusal`] turns away may be tried again: the end of
    /// its ejection, or [`TRIAL_WAIT`] while a trial re-tests it. `None` when that is
    /// not known (drained by an operator) or it is not refused.
    pub fn admissible_in(&self, now: Instant) -> Option<Duration> {
        if self.draining || self.state != ProviderState::Unhealthy {
            return None;
        }
        match self.ejected_until {
            Some(t) if now < t => Some(t - now),
            _ if self.trial_in_flight => Some(TRIAL_WAIT),
            _ => None,
        }
    }

    /// Decides whether a request may go to this provider, reserving the trial slot
    /// when it is the one request that re-tests an ejected provider.
    pub fn admit(&mut self, now: Instant) -> Admission {
        if let Some(reason) = self.refusal(now) {
            return Admission::Refused(reason);
        }
        if self.state == ProviderState::Unhealthy {
            self.trial_in_flight = true;
            return Admission::Trial;
        }
        Admission::Open
    }

    /// Whether `admit` would say yes, without reserving anything.
    pub fn is_routable(&self, now: Instant) -> bool {
        self.refusal(now).is_none()
    }

    /// Releases a trial slot whose call ended without evidence (the caller went away,
    /// or the request itself was at fault).
    pub fn end_trial_without_verdict(&mut self) {
        self.trial_in_flight = false;
    }

    /// A provider-side success (probe or live).
    pub fn record_success(
        &mut self,
        cfg: &HealthConfig,
        now: Instant,
        latency: Duration,
        probe: bool,
    ) {
        self.trial_in_flight = false;
        self.consecutive_failures = 0;
        self.consecutive_successes += 1;
        self.last_evidence = Some(now);
        self.last_success_at = Some(Utc::now());
        if probe {
            self.last_probe_at = self.last_success_at;
            self.last_probe_ok = Some(true);
        } else {
            self.last_live_success = Some(now);
            self.requests += 1;
        }
        self.observe_latency(latency);
        if self.state != ProviderState::Healthy && self.consecutive_successes >= cfg.healthy_after {
            let was = self.state;
            self.set_state(
                ProviderState::Healthy,
                format!(
                    "{} succeeded{}",
                    if probe {
                        "probe inference"
                    } else {
                        "live inference"
                    },
                    if was == ProviderState::Unhealthy {
                        " after ejection: re-admitted"
                    } else {
                        ""
                    }
                ),
            );
            self.ejected_until = None;
            self.ejected_until_wall = None;
        }
    }

    /// A provider-side failure (probe or live). Request-caused failures must not be
    /// recorded here.
    pub fn record_failure(
        &mut self,
        cfg: &HealthConfig,
        now: Instant,
        failure: Failure,
        probe: bool,
    ) {
        let was_trial = std::mem::take(&mut self.trial_in_flight);
        self.consecutive_successes = 0;
        self.consecutive_failures += 1;
        self.last_evidence = Some(now);
        self.failures += 1;
        if probe {
            self.last_probe_at = Some(Utc::now());
            self.last_probe_ok = Some(false);
        } else {
            self.requests += 1;
        }
        let summary = failure_summary(&failure);
        self.last_failure = Some(failure);
        let trial_failed = was_trial || self.state == ProviderState::Unhealthy;
        if trial_failed || self.consecutive_failures >= cfg.unhealthy_after {
            self.eject(cfg, now, summary, trial_failed);
        }
    }

    fn eject(&mut self, cfg: &HealthConfig, now: Instant, summary: String, after_trial: bool) {
        self.times_ejected += 1;
        let factor = self.times_ejected.max(1);
        let length = cfg.eject_base.saturating_mul(factor).min(cfg.eject_max);
        self.ejected_until = Some(now + length);
        let wall = Utc::now() + chrono::Duration::from_std(length).unwrap_or_default();
        self.ejected_until_wall = Some(wall);
        let why = if after_trial {
            "trial after ejection failed".to_string()
        } else {
            format!("{} consecutive failures", self.consecutive_failures)
        };
        self.set_state(
            ProviderState::Unhealthy,
            format!(
                "ejected until {} ({why}); last failure: {summary}",
                wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        );
    }

    fn set_state(&mut self, state: ProviderState, reason: String) {
        if state != self.state {
            self.since = Utc::now();
        }
        self.state = state;
        self.reason = reason;
    }

    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
        self.since = Utc::now();
    }

    /// A probe is worth its cost unless live traffic just proved the provider, it is
    /// ejected and not yet due its trial, a trial is already running, or it is drained.
    pub fn probe_due(&self, cfg: &HealthConfig, now: Instant) -> bool {
        if self.draining || self.trial_in_flight {
            return false;
        }
        if self.state == ProviderState::Unhealthy {
            return self.ejected_until.is_none_or(|t| now >= t);
        }
        self.last_live_success
            .is_none_or(|t| now.duration_since(t) >= cfg.skip_probe_if_live_success_within)
    }

    /// No evidence for three probe intervals.
    pub fn is_stale(&self, cfg: &HealthConfig, now: Instant) -> bool {
        self.last_evidence
            .is_none_or(|t| now.duration_since(t) > cfg.probe_interval.saturating_mul(3))
    }

    fn observe_latency(&mut self, latency: Duration) {
        let s = latency.as_secs_f64();
        self.latency_ewma = Some(match self.latency_ewma {
            None => s,
            Some(prev) => prev + EWMA_ALPHA * (s - prev),
        });
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(s);
    }

    /// Latency EWMA in seconds (0 before any sample).
    pub fn avg_latency(&self) -> f64 {
        self.latency_ewma.unwrap_or(0.0)
    }

    /// The q-quantile of the recent latency window, in seconds.
    pub fn latency_quantile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut v: Vec<f64> = self.latencies.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let idx = ((v.len() - 1) as f64 * q).round() as usize;
        v[idx.min(v.len() - 1)]
    }

    /// Share of live requests that succeeded (1 before any).
    pub fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            let live_failures = self.failures.min(self.requests);
            (self.requests - live_failures) as f64 / self.requests as f64
        }
    }
}

/// "HTTP 404: modal-http: invalid function call" style one-liner of a failure.
pub fn failure_summary(f: &Failure) -> String {
    match f.http_status {
        // Provider HTTP failures already start with "HTTP 404: …".
        Some(s) if !f.message.starts_with("HTTP ") => format!("{} HTTP {s}: {}", f.code, f.message),
        _ => format!("{}: {}", f.code, f.message),
    }
}

#[cfg(test)]
mod tests;
