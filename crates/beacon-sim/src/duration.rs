//! Duration flags of the simulator: beacon-core's grammar (`200ms`, `3s`, `2m`, `1h30m`)
//! plus one convenience for fault knobs, a bare number meaning milliseconds, capped at a
//! day (anything longer is a typo).

use std::time::Duration;

pub use beacon_core::duration::DurationError;

/// Longest duration accepted: a day.
const MAX: Duration = Duration::from_secs(86_400);

/// Parses a duration flag; a bare number is milliseconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let trimmed = input.trim();
    let d = match trimmed.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => beacon_core::duration::parse_duration(trimmed)?,
    };
    if d > MAX {
        return Err(DurationError {
            input: input.chars().take(64).collect(),
            reason: "longer than 24h",
        });
    }
    Ok(d)
}

/// Whole milliseconds of a duration (what the fault knobs store).
pub fn whole_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (input, ms) in [
            ("200ms", 200),
            ("3s", 3_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1.5s", 1_500),
            ("250", 250),
            (" 0 ", 0),
            ("150s", 150_000),
            ("1m30s", 90_000),
        ] {
            assert_eq!(parse_duration(input).map(whole_ms), Ok(ms), "{input}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "ms", "-1s", "3 parsecs", "1.2.3s", "2d", "25h", "s3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
