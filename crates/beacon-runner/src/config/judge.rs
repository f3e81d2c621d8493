//! `[judge]`: the optional judge model that labels completed answers with a fixed rubric
//! (crate::judge, docs/analysis.md "Judge"). Off by default; when on, the model and the
//! region to ask are required, and the region must be one beacon-core knows.

use std::time::Duration;

use beacon_core::Region;
use serde::Deserialize;

use super::sections::de_duration;
use super::{ConfigError, err};

/// `[judge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    pub enabled: bool,
    /// A model id the router serves; required when enabled.
    pub model: Option<String>,
    /// The region asked (canonical after the check); required when enabled.
    pub region: Option<String>,
    /// Judge calls in flight from this instance.
    pub max_concurrency: u32,
    /// `max_tokens` of a judge call: the reply is one word.
    pub max_tokens: u32,
    /// How often the stored answers are looked at for ones without a label.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Upper bound of one judge call (and never above the router timeout).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            enabled: false,
            model: None,
            region: None,
            max_concurrency: 4,
            max_tokens: 16,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
        }
    }
}

impl JudgeConfig {
    /// Checks the table and makes `region` canonical. A disabled judge is not checked
    /// beyond its types: it is off.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let model = self.model.as_deref().map(str::trim).unwrap_or_default();
        if model.is_empty() {
            return Err(err(
                "judge.model",
                "required when judge.enabled = true (a model id the router serves)",
            ));
        }
        self.model = Some(model.to_string());
        let region = self.region.as_deref().unwrap_or_default();
        if region.trim().is_empty() {
            return Err(err(
                "judge.region",
                "required when judge.enabled = true (the region the judge is asked in)",
            ));
        }
        let region = Region::parse_known(region).map_err(|_| {
            err(
                "judge.region",
                format!(
                    "{region:?} is not a known region (us-east, eu-west, asia-pacific or an alias)"
                ),
            )
        })?;
        self.region = Some(region.as_str().to_string());
        for (key, v) in [
            ("judge.max_concurrency", self.max_concurrency),
            ("judge.max_tokens", self.max_tokens),
        ] {
            if v == 0 {
                return Err(err(key, "must be at least 1"));
            }
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            let key = if self.interval.is_zero() {
                "judge.interval"
            } else {
                "judge.timeout"
            };
            return Err(err(key, "must be longer than 0"));
        }
        Ok(())
    }

    /// The model and region of an enabled judge.
    pub fn target(&self) -> Option<(&str, &str)> {
        match (self.enabled, self.model.as_deref(), self.region.as_deref()) {
            (true, Some(m), Some(r)) => Some((m, r)),
            _ => None,
        }
    }

    pub(super) fn summary(&self) -> String {
        match self.target() {
            Some((m, r)) => format!(
                "judge={m}@{r} (max_concurrency={}, rubric {})",
                self.max_concurrency,
                crate::judge::RUBRIC_VERSION
            ),
            None => "judge=off".to_string(),
        }
    }
}
