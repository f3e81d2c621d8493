//! Active health probes: every `probe_interval` (±10 % jitter) a minimal real inference
//! on each provider's real inference URL, unless live traffic just proved it. Never a
//! separate health URL: that is what failed every job in the previous deployment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beacon_core::Failure;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::HealthConfig;
use crate::health::Admission;
use crate::metrics::Metrics;
use crate::provider::UpstreamCall;
use crate::registry::{Provider, Registry};
use crate::spans;

/// The result of one probe, as the admin route shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProbeReport {
    pub provider: String,
    pub probed: bool,
    pub ok: bool,
    pub latency_ms: Option<u64>,
    pub skipped_because: Option<String>,
    pub failure: Option<Failure>,
    pub state: String,
}

/// Probes one provider now (if it admits a request and has a free slot) and records
/// the evidence.
pub async fn probe_once(p: &Provider, cfg: &HealthConfig, metrics: &Metrics) -> ProbeReport {
    let skipped = |why: String| ProbeReport {
        provider: p.cfg.name.clone(),
        probed: false,
        ok: false,
        latency_ms: None,
        skipped_because: Some(why),
        failure: None,
        state: p.with_health(|h| h.state().as_str().to_string()),
    };
    let Some(slot) = p.try_slot() else {
        metrics.probe(&p.cfg.name, "skipped");
        return skipped("every concurrency slot is busy with live traffic".into());
    };
    if let Admission::Refused(why) = p.admit(Instant::now()) {
        metrics.probe(&p.cfg.name, "skipped");
        return skipped(why);
    }
    // A probe is a trace of its own, never part of a request's.
    let span = spans::probe(p, p.cfg.probe_model.as_str());
    let call = UpstreamCall {
        model: p
            .cfg
            .upstream_model(p.cfg.probe_model.as_str())
            .unwrap_or("")
            .to_string(),
        prompt: cfg.probe_prompt.clone(),
        temperature: 0.0,
        max_tokens: cfg.probe_max_tokens,
        timeout: cfg.probe_timeout,
        traceparent: spans::upstream_traceparent(&span, None),
    };
    let started = Instant::now();
    let result = p.client.call(&call).instrument(span.clone()).await;
    spans::upstream_ended(&span, &result);
    drop(slot);
    let latency = started.elapsed();
    let (ok, failure) = match result {
        Ok(_) => {
            p.record_success(cfg, latency, true);
            (true, None)
        }
        Err(cf) => {
            let f = cf.failure.with_model(p.cfg.probe_model.as_str());
            // Even a "request" fault counts here: the probe request is ours and known
            // good, so a refusal means the provider cannot serve its own probe model.
            p.record_failure(cfg, f.clone(), true);
            (false, Some(f))
        }
    };
    metrics.probe(&p.cfg.name, if ok { "ok" } else { "failed" });
    ProbeReport {
        provider: p.cfg.name.clone(),
        probed: true,
        ok,
        latency_ms: Some(latency.as_millis() as u64),
        skipped_because: None,
        failure,
        state: p.with_health(|h| h.state().as_str().to_string()),
    }
}

/// Starts one probe loop per provider. `first_round` counts providers whose first
/// probe has finished.
pub fn spawn(
    registry: Arc<Registry>,
    cfg: HealthConfig,
    metrics: Arc<Metrics>,
    first_round: Arc<AtomicUsize>,
    tracker: &TaskTracker,
    token: CancellationToken,
) {
    for index in 0..registry.providers.len() {
        let (registry, cfg, metrics, first_round, token) = (
            registry.clone(),
            cfg.clone(),
            metrics.clone(),
            first_round.clone(),
            token.clone(),
        );
        tracker.spawn(async move {
            let Some(p) = registry.providers.get(index) else { return };
            // Probes start at boot: the first one runs at once.
            let first = tokio::select! {
                _ = token.cancelled() => return,
                r = probe_once(p, &cfg, &metrics) => r,
            };
            tracing::info!(provider = %first.provider, ok = first.ok, state = %first.state, "first probe");
            first_round.fetch_add(1, Ordering::Relaxed);
            loop {
                let wait = next_wait(p, &cfg, index);
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let due = p.with_health(|h| h.probe_due(&cfg, Instant::now()));
                if due {
                    let r = tokio::select! {
                        _ = token.cancelled() => return,
                        r = probe_once(p, &cfg, &metrics) => r,
                    };
                    if !r.ok && r.probed {
                        tracing::warn!(provider = %r.provider, state = %r.state,
                            failure = ?r.failure.as_ref().map(|f| f.to_string()), "probe failed");
                    }
                }
            }
        });
    }
}

/// The jittered interval, cut short when an ejection ends sooner (so the trial that
/// re-admits a recovered provider is not delayed by a whole interval).
fn next_wait(p: &Provider, cfg: &HealthConfig, salt: usize) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread =
        ((u64::from(nanos) ^ (salt as u64).wrapping_mul(0x9E37_79B9)) % 2001) as f64 / 10_000.0;
    let base = cfg.probe_interval.mul_f64(0.9 + spread);
    let until_trial = p.with_health(|h| h.ejection_left(Instant::now()));
    match until_trial {
        Some(left) => base.min(left + Duration::from_millis(1)),
        None => base,
    }
}
