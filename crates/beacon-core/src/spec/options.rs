//! The spec's options: `constraints.min_success_rate`, the timeouts, `params`
//! (temperature, max tokens) and `min_regions`, each checked against its bounds.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::SpecErrorCode as Code;
use super::read::{invalid, truncate};
use super::{JobOptions, SpecError, bounds, defaults};
use crate::duration::duration_from_json;

type Result<T> = std::result::Result<T, SpecError>;

pub(super) fn read_options(
    obj: &Map<String, Value>,
    constraints: Option<&Map<String, Value>>,
) -> Result<JobOptions> {
    let get = |key: &str| {
        constraints
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
    };
    let min_success_rate = match get("min_success_rate") {
        None => defaults::MIN_SUCCESS_RATE,
        Some(v) => v
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                SpecError::new(
                    Code::InvalidMinSuccessRate,
                    "constraints.min_success_rate",
                    format!(
                        "min_success_rate must be a number in [0, 1], got {}",
                        truncate(&v.to_string())
                    ),
                )
            })?,
    };
    let timeout = read_timeout(
        get("timeout"),
        "constraints.timeout",
        defaults::TIMEOUT,
        bounds::MAX_JOB_TIMEOUT,
    )?;
    let provider_timeout = read_timeout(
        get("provider_timeout"),
        "constraints.provider_timeout",
        defaults::PROVIDER_TIMEOUT,
        bounds::MAX_PROVIDER_TIMEOUT,
    )?;
    let min_regions = match get("min_regions") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    invalid(
                        "constraints.min_regions",
                        "min_regions must be a whole number ≥ 0",
                    )
                })?,
        ),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => {
            return Err(SpecError::new(
                Code::InvalidParams,
                "params",
                "params must be an object",
            ));
        }
    };
    let param = |key: &str| params.and_then(|p| p.get(key)).filter(|v| !v.is_null());
    let temperature = match param("temperature") {
        None => defaults::TEMPERATURE,
        Some(v) => v
            .as_f64()
            .filter(|t| (0.0..=bounds::MAX_TEMPERATURE).contains(t))
            .ok_or_else(|| {
                SpecError::new(
                    Code::InvalidParams,
                    "params.temperature",
                    format!(
                        "temperature must be a number in [0, {}]",
                        bounds::MAX_TEMPERATURE
                    ),
                )
            })?,
    };
    let max_tokens = match param("max_tokens") {
        None => defaults::MAX_TOKENS,
        Some(v) => v
            .as_u64()
            .filter(|t| (1..=u64::from(bounds::MAX_TOKENS)).contains(t))
            .map(|t| t as u32)
            .ok_or_else(|| {
                SpecError::new(
                    Code::InvalidParams,
                    "params.max_tokens",
                    format!(
                        "max_tokens must be a whole number in [1, {}]",
                        bounds::MAX_TOKENS
                    ),
                )
            })?,
    };
    Ok(JobOptions {
        min_success_rate,
        timeout,
        provider_timeout,
        temperature,
        max_tokens,
        min_regions,
    })
}

fn read_timeout(
    v: Option<&Value>,
    field: &str,
    default: Duration,
    max: Duration,
) -> Result<Duration> {
    let Some(v) = v else {
        return Ok(default);
    };
    let d = duration_from_json(v)
        .map_err(|e| SpecError::new(Code::InvalidDuration, field, format!("{field}: {e}")))?;
    if d < bounds::MIN_TIMEOUT || d > max {
        return Err(SpecError::new(
            Code::InvalidDuration,
            field,
            format!(
                "{field} must be between {} and {}",
                crate::duration::format_duration(bounds::MIN_TIMEOUT),
                crate::duration::format_duration(max)
            ),
        ));
    }
    Ok(d)
}
