//! `SimConfig`: everything a simulator instance is started with (identity, models,
//! scenario, initial faults, seed, bounds), with defaults suited to tests.

use std::net::SocketAddr;
use std::time::Duration;

use beacon_core::Region;
use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use crate::scenario::Scenario;

/// The models the replaced Modal deployment served.
pub const DEFAULT_MODELS: [&str; 3] = ["llama3.2-1b", "mistral-7b", "qwen2.5-1.5b"];

/// Which provider contract the instance presents as its own. Both inference routes are
/// always served (one simulator can back either provider kind); the kind decides the
/// shape of answers to unknown paths and what `/health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    #[default]
    Modal,
    Openai,
}

/// Configuration of one simulator instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to bind (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Canonical region; selects the scenario persona.
    pub region: Region,
    /// Region label reported in answers (Modal's APAC app calls itself
    /// `asia-southeast`); defaults to the region.
    pub label: Option<String>,
    pub kind: ProviderKind,
    /// Model names accepted; others get `Unknown model`.
    pub models: Vec<String>,
    pub scenario: Option<Scenario>,
    /// Initial fault knobs (changeable at run time).
    pub faults: Faults,
    /// Seed of every fault and answer draw.
    pub seed: u64,
    /// After a 303, how long a call keeps running with no client waiting on its result
    /// URL before it is cancelled as `cancelled_by_client`.
    pub orphan_grace: Duration,
    /// How many call records the stats log keeps (oldest dropped first).
    pub log_capacity: usize,
    /// How many finished results of redirected calls are kept for reloads.
    pub result_capacity: usize,
    /// How long `shutdown()` lets open connections finish before closing them.
    pub shutdown_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: Region::us_east(),
            label: None,
            kind: ProviderKind::Modal,
            models: DEFAULT_MODELS.iter().map(|m| m.to_string()).collect(),
            scenario: None,
            faults: Faults::default(),
            seed: 0,
            orphan_grace: Duration::from_secs(2),
            log_capacity: 1_000_000,
            result_capacity: 10_000,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl SimConfig {
    /// Defaults for one region.
    pub fn for_region(region: Region) -> SimConfig {
        SimConfig {
            region,
            ..SimConfig::default()
        }
    }

    /// Builder: replaces the initial faults.
    pub fn with_faults(mut self, faults: Faults) -> SimConfig {
        self.faults = faults;
        self
    }

    /// Builder: sets the scenario.
    pub fn with_scenario(mut self, scenario: Scenario) -> SimConfig {
        self.scenario = Some(scenario);
        self
    }

    /// Builder: sets the seed.
    pub fn with_seed(mut self, seed: u64) -> SimConfig {
        self.seed = seed;
        self
    }

    /// The label answers report.
    pub fn effective_label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.region.as_str().to_string())
    }

    /// Checks what the types cannot: faults in range, a usable model list, a sane label.
    pub fn validate(&self) -> Result<(), String> {
        self.faults.validate().map_err(|e| e.0)?;
        if self.models.is_empty() {
            return Err("at least one model is required".into());
        }
        for (i, m) in self.models.iter().enumerate() {
            if m.is_empty()
                || m.len() > 128
                || m.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!("invalid model name {m:?}"));
            }
            if self.models[..i].contains(m) {
                return Err(format!("model {m:?} is listed twice"));
            }
        }
        if let Some(label) = &self.label {
            if label.is_empty()
                || label.len() > 64
                || label.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "invalid label {label:?}: use a short slug such as asia-southeast"
                ));
            }
        }
        Ok(())
    }
}
