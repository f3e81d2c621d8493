//! The portal's cross-region wrapper (`POST /api/v1/jobs/cross-region`,
//! portal-contract.md 2.1.1): `{jobspec, target_regions, min_regions,
//! min_success_rate, enable_analysis}` around a signed spec.
//!
//! The spec is verified exactly as received (its raw bytes are what `POST /jobs`
//! would get). The wrapper is not signed, so it may never weaken what was: its
//! `target_regions` must name the signed regions exactly, and its thresholds can only
//! raise the signed ones (the stricter of the two applies). See docs/runner.md.

use beacon_core::Region;
use beacon_core::spec::JobPlan;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The wrapper's own fields, parsed; `jobspec` is kept as raw bytes.
pub struct Wrapper<'a> {
    pub jobspec: &'a [u8],
    pub options: CrossRegion,
}

/// What the wrapper asks beyond the signed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossRegion {
    pub target_regions: Vec<Region>,
    pub min_regions: Option<u32>,
    pub min_success_rate: Option<f64>,
    /// Accepted and reported; the analysis is always available.
    pub enable_analysis: bool,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    jobspec: Option<&'a RawValue>,
    #[serde(default)]
    target_regions: Option<Value>,
    #[serde(default)]
    min_regions: Option<Value>,
    #[serde(default)]
    min_success_rate: Option<Value>,
    #[serde(default)]
    enable_analysis: Option<Value>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad(code, message)
}

/// Reads the wrapper (the body was already checked to be JSON of an allowed size).
pub fn parse(body: &[u8]) -> Result<Wrapper<'_>, ApiError> {
    let raw: Raw<'_> = serde_json::from_slice(body).map_err(|e| {
        bad(
            "INVALID_WRAPPER",
            format!("expected {{jobspec, target_regions, …}}: {e}"),
        )
    })?;
    let jobspec = raw
        .jobspec
        .filter(|j| j.get().trim_start().starts_with('{'))
        .ok_or_else(|| {
            bad(
                "INVALID_WRAPPER",
                "jobspec must be the signed job spec object",
            )
        })?;
    let regions = match raw.target_regions {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(bad(
                "INVALID_WRAPPER",
                "target_regions must be a non-empty array of region codes",
            ));
        }
    };
    let mut target_regions = Vec::with_capacity(regions.len());
    for r in &regions {
        let text = r.as_str().ok_or_else(|| {
            bad(
                "UNKNOWN_REGION",
                format!("target_regions: {r} is not a string"),
            )
        })?;
        let region = Region::parse(text)
            .map_err(|e| bad("UNKNOWN_REGION", format!("target_regions: {text:?}: {e}")))?;
        if !target_regions.contains(&region) {
            target_regions.push(region);
        }
    }
    let min_regions = match raw.min_regions {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    bad(
                        "INVALID_MIN_REGIONS",
                        "min_regions must be a whole number ≥ 0",
                    )
                })?,
        ),
    };
    let min_success_rate = match raw.min_success_rate {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    bad(
                        "INVALID_MIN_SUCCESS_RATE",
                        "min_success_rate must be a number between 0 and 1",
                    )
                })?,
        ),
    };
    let enable_analysis = match raw.enable_analysis {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(bad(
                "INVALID_WRAPPER",
                "enable_analysis must be true or false",
            ));
        }
    };
    Ok(Wrapper {
        jobspec: jobspec.get().as_bytes(),
        options: CrossRegion {
            target_regions,
            min_regions,
            min_success_rate,
            enable_analysis,
        },
    })
}

impl CrossRegion {
    /// Combines the wrapper with the verified plan: the same regions, thresholds only
    /// raised. Returns the effective `(min_success_rate, min_regions)`.
    pub fn apply(&self, plan: &JobPlan) -> Result<(f64, u32), ApiError> {
        let mut signed: Vec<&str> = plan.regions.iter().map(|r| r.as_str()).collect();
        let mut asked: Vec<&str> = self.target_regions.iter().map(|r| r.as_str()).collect();
        signed.sort_unstable();
        asked.sort_unstable();
        if signed != asked {
            return Err(bad(
                "TARGET_REGIONS_MISMATCH",
                format!(
                    "target_regions {asked:?} must name exactly the regions of the signed spec \
                     {signed:?}: the wrapper is not signed and cannot change them"
                ),
            ));
        }
        let rate = plan
            .options
            .min_success_rate
            .max(self.min_success_rate.unwrap_or(0.0));
        let regions = effective_min_regions(plan, self.min_regions)?;
        Ok((rate, regions))
    }
}

/// The stricter of the signed `constraints.min_regions` and `extra`, no more than the
/// job's regions (a quorum nobody can meet is refused, not run).
pub fn effective_min_regions(plan: &JobPlan, extra: Option<u32>) -> Result<u32, ApiError> {
    let min = plan
        .options
        .min_regions
        .unwrap_or(0)
        .max(extra.unwrap_or(0));
    let regions = plan.regions.len();
    if min as usize > regions {
        return Err(bad(
            "INVALID_MIN_REGIONS",
            format!("min_regions {min} is more than the job's {regions} region(s)"),
        ));
    }
    Ok(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portals_wrapper_is_read_and_bad_ones_are_named() {
        let w = parse(
            br#"{"jobspec": {"id": "x"}, "target_regions": ["US", "EU", "us-east"], "min_regions": 1, "min_success_rate": 0.67, "enable_analysis": true}"#,
        )
        .unwrap();
        assert_eq!(w.jobspec, br#"{"id": "x"}"#);
        assert_eq!(
            w.options
                .target_regions
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>(),
            ["us-east", "eu-west"]
        );
        assert_eq!(
            (w.options.min_regions, w.options.min_success_rate),
            (Some(1), Some(0.67))
        );
        for (body, code) in [
            (r#"{"target_regions": ["US"]}"#, "INVALID_WRAPPER"),
            (
                r#"{"jobspec": [], "target_regions": ["US"]}"#,
                "INVALID_WRAPPER",
            ),
            (
                r#"{"jobspec": {}, "target_regions": []}"#,
                "INVALID_WRAPPER",
            ),
            (
                r#"{"jobspec": {}, "target_regions": ["MARS"]}"#,
                "UNKNOWN_REGION",
            ),
            (
                r#"{"jobspec": {}, "target_regions": ["US"], "min_regions": -1}"#,
                "INVALID_MIN_REGIONS",
            ),
            (
                r#"{"jobspec": {}, "target_regions": ["US"], "min_success_rate": 2}"#,
                "INVALID_MIN_SUCCESS_RATE",
            ),
            (
                r#"{"jobspec": {}, "target_regions": ["US"], "enable_analysis": "yes"}"#,
                "INVALID_WRAPPER",
            ),
        ] {
            let e = parse(body.as_bytes()).err().unwrap();
            assert_eq!(e.code(), code, "{body}");
        }
    }
}
