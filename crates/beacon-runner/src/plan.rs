//! The part of a validated job plan the scheduler needs later (question texts, models,
//! regions, options), stored with the job so a job runs the same on any instance, even
//! after the question catalogue changes.

use std::time::Duration;

use beacon_core::spec::JobPlan;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredQuestion {
    pub id: String,
    pub text: String,
    pub category: String,
    pub sensitive: bool,
    #[serde(default)]
    pub markers: Vec<String>,
}

/// What the scheduler needs to run a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub questions: Vec<StoredQuestion>,
    pub models: Vec<String>,
    pub regions: Vec<String>,
    pub runs: u32,
    pub temperature: f64,
    pub max_tokens: u32,
    pub timeout_ms: u64,
    pub provider_timeout_ms: u64,
    /// One trace id for the whole job; each attempt is a span in it.
    pub trace_id: String,
}

impl StoredPlan {
    pub fn from_plan(plan: &JobPlan, trace_id: String) -> StoredPlan {
        StoredPlan {
            questions: plan
                .questions
                .iter()
                .map(|q| StoredQuestion {
                    id: q.id.to_string(),
                    text: q.text.clone(),
                    category: q.category.clone(),
                    sensitive: q.sensitive,
                    markers: q.markers.clone(),
                })
                .collect(),
            models: plan.models.iter().map(|m| m.id.to_string()).collect(),
            regions: plan.regions.iter().map(|r| r.to_string()).collect(),
            runs: plan.runs,
            temperature: plan.options.temperature,
            max_tokens: plan.options.max_tokens,
            timeout_ms: plan.options.timeout.as_millis() as u64,
            provider_timeout_ms: plan.options.provider_timeout.as_millis() as u64,
            trace_id,
        }
    }

    pub fn question(&self, id: &str) -> Option<&StoredQuestion> {
        self.questions.iter().find(|q| q.id == id)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn provider_timeout(&self) -> Duration {
        Duration::from_millis(self.provider_timeout_ms)
    }
}
