//! The seeded per-call plan: which fault (if any) a call gets, its latency and its answer
//! variant, drawn from `hash(seed, model, prompt, occurrence)`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::draw::Draw;
use crate::faults::Faults;

/// The fault drawn for a call. Rates are checked in this priority order, each against its
/// own independent draw: hang, drop, error, malformed, empty. So `error_rate: 1` makes
/// every call fail whatever the lower-priority rates are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    None,
    Hang,
    Drop,
    Error,
    Malformed,
    Empty,
}

/// Everything random about one call, fixed when it is admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub fault: FaultKind,
    /// For [`FaultKind::Error`]: `true` = HTTP 500 crash text, `false` = a failure the
    /// provider reports in its own JSON shape.
    pub crash: bool,
    pub latency: Duration,
    /// 0 at temperature 0 (canonical wording), else 1..=3.
    pub variant: u32,
    /// Spare randomness (e.g. which error message).
    pub pick: u64,
    /// A successful, non-empty answer gets a U+0000 in its middle (`nul_rate`).
    pub nul: bool,
    /// `oversize_bytes` when the call was admitted: pad a successful answer to this.
    pub oversize_bytes: u64,
}

impl Plan {
    /// Draws the plan. Every value is drawn in a fixed order whatever the rates are, so
    /// changing one rate never shifts the draws behind another.
    pub fn draw(
        seed: u64,
        model: &str,
        prompt: &str,
        occurrence: u32,
        temperature: f64,
        faults: &Faults,
    ) -> Plan {
        let mut d = Draw::from_parts(&[
            b"beacon-sim/call/v1",
            &seed.to_le_bytes(),
            model.as_bytes(),
            prompt.as_bytes(),
            &occurrence.to_le_bytes(),
        ]);
        let u_hang = d.unit();
        let u_drop = d.unit();
        let u_error = d.unit();
        let u_malformed = d.unit();
        let u_empty = d.unit();
        let u_crash = d.unit();
        let u_latency = d.unit();
        let variant_bits = d.next_u64();
        let pick = d.next_u64();
        // Drawn after every older draw, so adding it changed no recorded drill.
        let u_nul = d.unit();

        let fault = if u_hang < faults.hang_rate {
            FaultKind::Hang
        } else if u_drop < faults.drop_rate {
            FaultKind::Drop
        } else if u_error < faults.error_rate {
            FaultKind::Error
        } else if u_malformed < faults.malformed_rate {
            FaultKind::Malformed
        } else if u_empty < faults.empty_rate {
            FaultKind::Empty
        } else {
            FaultKind::None
        };
        let jitter = (u_latency * 2.0 - 1.0) * faults.jitter_ms as f64;
        let latency_ms = (faults.latency_ms as f64 + jitter).max(0.0);
        let variant = if temperature == 0.0 {
            0
        } else {
            1 + (variant_bits % 3) as u32
        };
        Plan {
            fault,
            crash: u_crash < 0.5,
            latency: Duration::from_micros((latency_ms * 1_000.0) as u64),
            variant,
            pick,
            nul: u_nul < faults.nul_rate,
            oversize_bytes: faults.oversize_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_zero_and_one_are_exact_and_occurrence_changes_the_draw() {
        let always = Faults {
            error_rate: 1.0,
            empty_rate: 1.0,
            ..Faults::default()
        };
        let never = Faults::default();
        for occ in 0..50 {
            assert_eq!(
                Plan::draw(7, "m", "p", occ, 0.0, &always).fault,
                FaultKind::Error
            );
            assert_eq!(
                Plan::draw(7, "m", "p", occ, 0.0, &never).fault,
                FaultKind::None
            );
        }
        let picks: std::collections::HashSet<u64> = (0..10)
            .map(|o| Plan::draw(7, "m", "p", o, 0.7, &never).pick)
            .collect();
        assert_eq!(picks.len(), 10);
    }

    #[test]
    fn jitter_stays_within_bounds_and_temperature_zero_is_variant_zero() {
        let f = Faults {
            latency_ms: 100,
            jitter_ms: 20,
            ..Faults::default()
        };
        for occ in 0..100 {
            let p = Plan::draw(1, "m", "p", occ, 0.0, &f);
            assert!(
                (80..=120).contains(&p.latency.as_millis()),
                "{:?}",
                p.latency
            );
            assert_eq!(p.variant, 0);
            assert!((1..=3).contains(&Plan::draw(1, "m", "p", occ, 0.7, &f).variant));
        }
    }
}
