//! The fault knobs (`Faults`) shared by the CLI, the library and `POST /__sim/faults`,
//! their partial update (`FaultPatch`) and their validation.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest latency-like knob accepted (a day): larger values are typos, and the cap keeps
/// deadline arithmetic far from overflow.
pub const MAX_KNOB_MS: u64 = 86_400_000;

/// Largest `oversize_bytes` accepted (1 GiB): enough to drown any client's buffer, and
/// the padding is streamed, so even this costs the simulator little memory.
pub const MAX_OVERSIZE_BYTES: u64 = 1 << 30;

/// Every knob that shapes how the simulator (mis)behaves. JSON keys are the CLI flag
/// names with `_` for `-` and a `_ms` suffix on durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Probability of a runtime failure (half `{success:false}`, half HTTP 500).
    pub error_rate: f64,
    /// Probability of a success with an empty answer.
    pub empty_rate: f64,
    /// Probability that the call never answers.
    pub hang_rate: f64,
    /// Probability of a 200 whose JSON body is truncated.
    pub malformed_rate: f64,
    /// Probability that the connection is closed without any response.
    pub drop_rate: f64,
    /// Base service time of every inference call.
    pub latency_ms: u64,
    /// Seeded uniform spread around `latency_ms` (± this much).
    pub jitter_ms: u64,
    /// Extra delay for the first call after an idle period (0 = never cold).
    pub cold_start_ms: u64,
    /// Idle time after which the container is considered scaled down.
    pub idle_after_ms: u64,
    /// Calls still running after this long answer 303 to a result URL (0 = never).
    pub redirect_after_ms: u64,
    /// Calls served at once; more queue (`null` = unlimited).
    pub max_concurrency: Option<u32>,
    /// Inference routes answer 404 `modal-http: invalid function call`.
    pub inference_broken: bool,
    /// `GET /health` answers 404 `modal-http: invalid function call`.
    pub health_broken: bool,
    /// A successful, non-empty answer's text is padded to at least this many bytes
    /// (0 = off). The body is streamed, never built in memory.
    #[serde(default)]
    pub oversize_bytes: u64,
    /// Probability that a successful, non-empty answer carries a U+0000 in its middle.
    #[serde(default)]
    pub nul_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rate: 0.0,
            empty_rate: 0.0,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            drop_rate: 0.0,
            latency_ms: 0,
            jitter_ms: 0,
            cold_start_ms: 0,
            idle_after_ms: 120_000,
            // Modal cuts web requests at 150 s.
            redirect_after_ms: 150_000,
            max_concurrency: None,
            inference_broken: false,
            health_broken: false,
            oversize_bytes: 0,
            nul_rate: 0.0,
        }
    }
}

/// A fault value outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

impl Faults {
    /// Checks every knob; the message names the offending key and its allowed range.
    pub fn validate(&self) -> Result<(), FaultError> {
        for (key, rate) in [
            ("error_rate", self.error_rate),
            ("empty_rate", self.empty_rate),
            ("hang_rate", self.hang_rate),
            ("malformed_rate", self.malformed_rate),
            ("drop_rate", self.drop_rate),
            ("nul_rate", self.nul_rate),
        ] {
            if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
                return Err(FaultError(format!(
                    "{key} must be a number in [0, 1], got {rate}"
                )));
            }
        }
        for (key, ms) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
            ("cold_start_ms", self.cold_start_ms),
            ("idle_after_ms", self.idle_after_ms),
            ("redirect_after_ms", self.redirect_after_ms),
        ] {
            if ms > MAX_KNOB_MS {
                return Err(FaultError(format!(
                    "{key} must be at most {MAX_KNOB_MS} (24h), got {ms}"
                )));
            }
        }
        if self.oversize_bytes > MAX_OVERSIZE_BYTES {
            return Err(FaultError(format!(
                "oversize_bytes must be at most {MAX_OVERSIZE_BYTES} (1 GiB), got {}",
                self.oversize_bytes
            )));
        }
        if self.max_concurrency == Some(0) {
            return Err(FaultError(
                "max_concurrency must be at least 1 (or null for unlimited)".into(),
            ));
        }
        Ok(())
    }

    /// Returns these faults with the patch applied, validated as a whole.
    pub fn patched(&self, patch: &FaultPatch) -> Result<Faults, FaultError> {
        let mut f = self.clone();
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = patch.$field { f.$field = v; } )* };
        }
        take!(
            error_rate,
            empty_rate,
            hang_rate,
            malformed_rate,
            drop_rate,
            latency_ms,
            jitter_ms,
            cold_start_ms,
            idle_after_ms,
            redirect_after_ms,
            inference_broken,
            health_broken,
            oversize_bytes,
            nul_rate
        );
        if let Some(limit) = patch.max_concurrency {
            f.max_concurrency = limit;
        }
        f.validate()?;
        Ok(f)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// `None` when redirects are disabled (`redirect_after_ms == 0`).
    pub fn redirect_after(&self) -> Option<Duration> {
        (self.redirect_after_ms > 0).then(|| Duration::from_millis(self.redirect_after_ms))
    }
}

/// A partial update of [`Faults`]: absent keys are left alone. For `max_concurrency`,
/// `null` means "set to unlimited", which is why it is a double option.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub error_rate: Option<f64>,
    pub empty_rate: Option<f64>,
    pub hang_rate: Option<f64>,
    pub malformed_rate: Option<f64>,
    pub drop_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub cold_start_ms: Option<u64>,
    pub idle_after_ms: Option<u64>,
    pub redirect_after_ms: Option<u64>,
    #[serde(default, deserialize_with = "present_or_null")]
    pub max_concurrency: Option<Option<u32>>,
    pub inference_broken: Option<bool>,
    pub health_broken: Option<bool>,
    pub oversize_bytes: Option<u64>,
    pub nul_rate: Option<f64>,
}

/// Deserializes a key that is present (possibly `null`) as `Some(value)`; serde's
/// `default` covers the absent case with `None`.
fn present_or_null<'de, D>(d: D) -> Result<Option<Option<u32>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<u32>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_applies_only_present_keys_and_null_clears_the_limit() {
        let base = Faults {
            max_concurrency: Some(3),
            ..Faults::default()
        };
        let patch: FaultPatch = serde_json::from_str(r#"{"error_rate": 0.5}"#).unwrap();
        let f = base.patched(&patch).unwrap();
        assert_eq!(f.error_rate, 0.5);
        assert_eq!(f.max_concurrency, Some(3));
        let patch: FaultPatch = serde_json::from_str(r#"{"max_concurrency": null}"#).unwrap();
        assert_eq!(base.patched(&patch).unwrap().max_concurrency, None);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        let base = Faults::default();
        for (json, needle) in [
            (r#"{"error_rate": 1.5}"#, "error_rate"),
            (r#"{"drop_rate": -0.1}"#, "drop_rate"),
            (r#"{"max_concurrency": 0}"#, "max_concurrency"),
            (r#"{"latency_ms": 999999999999}"#, "latency_ms"),
            (r#"{"nul_rate": 2}"#, "nul_rate"),
            (r#"{"oversize_bytes": 2000000000}"#, "oversize_bytes"),
        ] {
            let patch: FaultPatch = serde_json::from_str(json).unwrap();
            let err = base.patched(&patch).unwrap_err();
            assert!(err.0.contains(needle), "{json}: {err}");
        }
        let err = serde_json::from_str::<FaultPatch>(r#"{"eror_rate": 1}"#).unwrap_err();
        assert!(err.to_string().contains("eror_rate"), "{err}");
    }
}
