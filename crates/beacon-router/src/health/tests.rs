//! Unit tests of the health state machine: ejection, trials, probes and latency.

use super::*;
use beacon_core::{ErrorCode, Stage};

fn cfg() -> HealthConfig {
    HealthConfig {
        unhealthy_after: 3,
        eject_base: Duration::from_secs(30),
        eject_max: Duration::from_secs(75),
        ..HealthConfig::default()
    }
}

fn fail() -> Failure {
    Failure::new(
        ErrorCode::ProviderHttpError,
        Stage::Upstream,
        "modal-http: invalid function call",
    )
    .with_http_status(404)
}

const MS: Duration = Duration::from_millis(10);

#[test]
fn unknown_until_evidence_then_healthy() {
    let mut h = Health::new();
    let t = Instant::now();
    assert_eq!(h.state(), ProviderState::Unknown);
    assert_eq!(h.admit(t), Admission::Open, "unknown is routable");
    assert!(h.is_stale(&cfg(), t));
    h.record_success(&cfg(), t, MS, true);
    assert_eq!(h.state(), ProviderState::Healthy);
    assert_eq!(h.last_probe_ok, Some(true));
    assert!(!h.is_stale(&cfg(), t));
}

#[test]
fn ejection_after_n_failures_with_growing_backoff_and_one_trial() {
    let c = cfg();
    let mut h = Health::new();
    let t0 = Instant::now();
    for _ in 0..2 {
        h.record_failure(&c, t0, fail(), false);
    }
    assert_eq!(h.state(), ProviderState::Unknown, "2 < unhealthy_after");
    h.record_failure(&c, t0, fail(), true);
    assert_eq!(h.state(), ProviderState::Unhealthy);
    assert!(
        h.reason().contains("HTTP 404") && h.reason().contains("invalid function call"),
        "{}",
        h.reason()
    );
    assert!(matches!(
        h.admit(t0 + Duration::from_secs(29)),
        Admission::Refused(_)
    ));
    // Ejection over: exactly one trial.
    let t1 = t0 + Duration::from_secs(30);
    assert!(h.probe_due(&c, t1));
    assert_eq!(h.admit(t1), Admission::Trial);
    assert!(matches!(h.admit(t1), Admission::Refused(r) if r.contains("trial")));
    // The trial fails: ejected again for 2 × base.
    h.record_failure(&c, t1, fail(), false);
    assert_eq!(h.times_ejected(), 2);
    assert!(matches!(
        h.admit(t1 + Duration::from_secs(59)),
        Admission::Refused(_)
    ));
    let t2 = t1 + Duration::from_secs(60);
    assert_eq!(h.admit(t2), Admission::Trial);
    h.record_failure(&c, t2, fail(), false);
    // Capped at eject_max (75 s), not 90 s.
    assert_eq!(h.admit(t2 + Duration::from_secs(75)), Admission::Trial);
    h.record_success(&c, t2 + Duration::from_secs(75), MS, false);
    assert_eq!(h.state(), ProviderState::Healthy);
    assert!(h.reason().contains("re-admitted"));
}

#[test]
fn admissible_in_says_when_an_ejection_ends_or_a_trial_decides() {
    let c = cfg();
    let mut h = Health::new();
    let t = Instant::now();
    assert_eq!(h.admissible_in(t), None, "not refused");
    for _ in 0..3 {
        h.record_failure(&c, t, fail(), false);
    }
    assert_eq!(h.admissible_in(t), Some(Duration::from_secs(30)));
    assert_eq!(
        h.admissible_in(t + Duration::from_secs(20)),
        Some(Duration::from_secs(10))
    );
    let later = t + Duration::from_secs(30);
    assert_eq!(h.admissible_in(later), None, "due its trial: routable");
    assert_eq!(h.admit(later), Admission::Trial);
    assert_eq!(h.admissible_in(later), Some(TRIAL_WAIT));
    h.set_draining(true);
    assert_eq!(h.admissible_in(later), None, "a drain has no known end");
}

#[test]
fn an_abandoned_trial_frees_the_slot() {
    let c = cfg();
    let mut h = Health::new();
    let t = Instant::now();
    for _ in 0..3 {
        h.record_failure(&c, t, fail(), false);
    }
    let later = t + Duration::from_secs(31);
    assert_eq!(h.admit(later), Admission::Trial);
    h.end_trial_without_verdict();
    assert_eq!(h.admit(later), Admission::Trial);
}

#[test]
fn live_success_makes_probes_unnecessary_and_draining_refuses() {
    let c = cfg();
    let mut h = Health::new();
    let t = Instant::now();
    assert!(h.probe_due(&c, t));
    h.record_success(&c, t, MS, false);
    assert!(!h.probe_due(&c, t + Duration::from_secs(5)));
    assert!(h.probe_due(&c, t + Duration::from_secs(31)));
    h.set_draining(true);
    assert_eq!(h.state(), ProviderState::Draining);
    assert!(matches!(h.admit(t), Admission::Refused(_)));
    h.set_draining(false);
    assert_eq!(h.state(), ProviderState::Healthy);
}

#[test]
fn latency_statistics() {
    let c = cfg();
    let mut h = Health::new();
    let t = Instant::now();
    for ms in [100, 200, 300, 400, 500] {
        h.record_success(&c, t, Duration::from_millis(ms), false);
    }
    assert!((h.latency_quantile(0.5) - 0.3).abs() < 1e-9);
    assert!((h.latency_quantile(0.95) - 0.5).abs() < 1e-9);
    assert!(h.avg_latency() > 0.1 && h.avg_latency() < 0.5);
    assert_eq!(h.success_rate(), 1.0);
}
