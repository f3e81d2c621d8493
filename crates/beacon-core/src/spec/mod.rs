//! The job spec: reading what the CLI and the portal send into a validated [`JobPlan`]
//! (the cells to run and the job's options). Reading rules are in runner.md; every
//! rule lives in `read.rs` and nowhere else.

mod error;
mod options;
mod read;

use std::time::Duration;

use serde_json::Value;

pub use error::{SpecError, SpecErrorCode};
pub use read::{read_spec, read_spec_bytes};

use crate::ids::{JobId, ModelId, QuestionId};
use crate::region::Region;

/// Size limits of one job (runner.md). Operators may tighten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_questions: usize,
    pub max_models: usize,
    pub max_regions: usize,
    pub max_runs: u32,
    pub max_executions: usize,
    pub max_question_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_questions: 500,
            max_models: 50,
            max_regions: 20,
            max_runs: 20,
            max_executions: 100_000,
            max_question_text_bytes: 8 * 1024,
        }
    }
}

/// Defaults applied when a spec leaves an option out.
pub mod defaults {
    use std::time::Duration;
    pub const MIN_SUCCESS_RATE: f64 = 0.67;
    pub const TIMEOUT: Duration = Duration::from_secs(60 * 60);
    pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    pub const TEMPERATURE: f64 = 0.1;
    pub const MAX_TOKENS: u32 = 500;
}

/// Bounds that make a timeout "absurd" (quality-bar.md): shorter than a second or
/// longer than a week for the job, longer than two hours for one provider call.
pub mod bounds {
    use std::time::Duration;
    pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
    pub const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const MAX_PROVIDER_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
    pub const MAX_TEMPERATURE: f64 = 2.0;
    pub const MAX_TOKENS: u32 = 32_768;
}

/// A question as the job will ask it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedQuestion {
    pub id: QuestionId,
    pub text: String,
    pub category: String,
    pub sensitive: bool,
    pub markers: Vec<String>,
    /// Given inline in the spec rather than taken from the catalogue.
    pub inline: bool,
}

/// A model the job will ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedModel {
    pub id: ModelId,
    pub name: Option<String>,
}

/// The job-wide options a spec sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobOptions {
    pub min_success_rate: f64,
    pub timeout: Duration,
    pub provider_timeout: Duration,
    pub temperature: f64,
    pub max_tokens: u32,
    pub min_regions: Option<u32>,
}

/// A validated job: everything the runner needs to insert its executions.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub id: JobId,
    /// The JSON exactly as received, unknown fields included (it is what was signed).
    pub spec: Value,
    pub benchmark: Option<String>,
    pub questions: Vec<PlannedQuestion>,
    pub models: Vec<PlannedModel>,
    pub regions: Vec<Region>,
    pub runs: u32,
    pub options: JobOptions,
}

/// One execution to run: question × model × region × run.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub question: &'a PlannedQuestion,
    pub model: &'a PlannedModel,
    pub region: &'a Region,
    pub run: u32,
}

impl JobPlan {
    /// How many executions the job has.
    pub fn total_executions(&self) -> usize {
        self.questions.len() * self.models.len() * self.regions.len() * self.runs as usize
    }

    /// Every cell, question-major, so the first results to arrive cover every region
    /// of the first question.
    pub fn cells(&self) -> impl Iterator<Item = Cell<'_>> + '_ {
        self.questions.iter().flat_map(move |question| {
            self.models.iter().flat_map(move |model| {
                self.regions.iter().flat_map(move |region| {
                    (0..self.runs).map(move |run| Cell {
                        question,
                        model,
                        region,
                        run,
                    })
                })
            })
        })
    }
}
