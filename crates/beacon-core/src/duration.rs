//! Durations as job specs and configs write them: Go-style strings or nanoseconds.
//!
//! The portal sends `600000000000` (Go's `time.Duration`, nanoseconds, = 10 min); people
//! write `"10m"`, `"90s"` or `"1h30m"`. Both are read here, once, into `std::time::Duration`.

use std::time::Duration;

use serde_json::Value;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `"300ms"`, `"1.5h"`, `"1h30m"`, `"90s"` (units ns, us, µs, ms, s, m, h).
/// A bare number in a string is refused: it would be ambiguous.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: text.chars().take(64).collect(),
        reason,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("negative"));
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit (use ms, s, m or h)")),
            _ => return Err(err("unknown unit (use ns, us, ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total_nanos += number * nanos_per_unit;
    }
    nanos_to_duration(total_nanos).ok_or_else(|| err("too large"))
}

/// Reads a JSON duration: a string as above, or a non-negative integer of nanoseconds.
pub fn duration_from_json(value: &Value) -> Result<Duration, DurationError> {
    match value {
        Value::String(s) => parse_duration(s),
        Value::Number(n) => {
            if let Some(ns) = n.as_u64() {
                Ok(Duration::from_nanos(ns))
            } else {
                Err(DurationError {
                    input: n.to_string(),
                    reason: if n.as_i64().is_some_and(|v| v < 0) {
                        "negative"
                    } else {
                        "a number must be whole nanoseconds"
                    },
                })
            }
        }
        other => Err(DurationError {
            input: other.to_string().chars().take(64).collect(),
            reason: "expected a string like \"10m\" or integer nanoseconds",
        }),
    }
}

/// Formats a duration the way it is parsed: `1h30m`, `90s` → `1m30s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}ns", d.as_nanos());
    }
    let (h, m, s, rem_ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (rem_ms, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

fn nanos_to_duration(nanos: f64) -> Option<Duration> {
    // u64 nanoseconds cover 584 years; anything past that is a typo, not a timeout.
    (nanos.is_finite() && nanos >= 0.0 && nanos < u64::MAX as f64)
        .then(|| Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_nanoseconds() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 2us "), Ok(Duration::from_micros(2)));
        assert_eq!(
            duration_from_json(&json!(600000000000u64)),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(
            duration_from_json(&json!("30m")),
            Ok(Duration::from_secs(1800))
        );
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "",
            "10",
            "-5s",
            "5 parsecs",
            "m",
            "1.2.3s",
            "99999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            duration_from_json(&json!(-1)).unwrap_err().reason,
            "negative"
        );
        assert!(duration_from_json(&json!(1.5)).is_err());
        assert!(duration_from_json(&json!(true)).is_err());
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "1m30s", "250ms", "10m", "2h0m0s1ms"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
