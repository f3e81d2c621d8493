//! The cross-region analysis of a job (analysis.md): per answer, per (question, model)
//! group across regions, and per job. Computed from stored executions only; every
//! number has its formula in docs/analysis.md.

mod build;
pub(crate) mod groups;
pub mod html;
pub mod judge;
mod scores;
#[cfg(test)]
pub(crate) mod tests;
pub mod text;

use std::collections::BTreeMap;

use beacon_core::receipt::sha256_hex;
use beacon_store::{ExecutionRecord, JobRecord};
use serde::Serialize;
use serde_json::Value;

pub use build::{FirstPass, ReportBuilder, answers_of};
pub use groups::RegionTally;
pub use judge::{Disagreement, JudgeSummary};
pub use scores::{Evidence, JobScores, RegionScore, Risk, evidence, group_scores, risk_level};

use crate::classify::Question;
use crate::plan::{StoredPlan, StoredQuestion};

/// One answer as the analysis sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub execution_id: String,
    pub region: String,
    pub run_index: u32,
    pub status: String,
    /// The stored classification: `substantive`, `content_refusal`, `empty_response`,
    /// `technical_failure`, or `none` for pending and cancelled executions.
    pub classification: String,
    /// The analysis's judgement of the answer with its question (`classify::judge`):
    /// `substantive`, `partial`, `refusal`, `empty_response` for completed executions;
    /// otherwise the classification. The scores use this, so executions stored under
    /// older rules are judged by the current ones.
    pub label: String,
    pub response: Option<String>,
    pub length: usize,
    pub markers_present: Vec<String>,
    pub provider_id: Option<String>,
    pub provider_region_label: Option<String>,
    pub latency_ms: Option<u64>,
    /// SHA-256 of the canonical signed receipt, when there is one.
    pub receipt_sha256: Option<String>,
    /// The provider said it is a simulator (`provenance.provider == "beacon-sim"`).
    pub simulated: bool,
    pub failure_code: Option<String>,
}

impl Answer {
    pub fn substantive(&self) -> bool {
        self.label == "substantive"
    }
    /// Deflected, hedged, answered another question or gave an official position.
    pub fn partial(&self) -> bool {
        self.label == "partial"
    }
    /// Substantive or partial: something to compare with other regions' answers.
    pub fn replied(&self) -> bool {
        self.substantive() || self.partial()
    }
    /// Refused or empty: the region did not answer although it was asked and replied.
    pub fn withheld(&self) -> bool {
        self.label == "refusal" || self.label == "empty_response"
    }
}

/// What the judgement uses of a stored question.
pub(crate) fn question_of(q: &StoredQuestion) -> Question<'_> {
    Question {
        markers: &q.markers,
        category: &q.category,
        text: &q.text,
    }
}

/// The label of an execution's answer (see [`Answer::label`]).
pub fn label(e: &ExecutionRecord, question: Question<'_>) -> &'static str {
    use beacon_core::status::{Classification, ExecutionStatus};
    if e.status != ExecutionStatus::Completed {
        return e.classification.map_or("none", Classification::as_str);
    }
    match e
        .response
        .as_deref()
        .and_then(|t| crate::classify::judge(t, Some(question)))
    {
        Some(l) => l.as_str(),
        None => "empty_response",
    }
}

/// Similarity of two regions' answers in a group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub similarity: f64,
}

/// A marker present in some regions' answers and absent from others'.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MarkerDifference {
    pub marker: String,
    pub present_in: Vec<String>,
    pub absent_from: Vec<String>,
    /// Region → text around the marker.
    pub snippets: BTreeMap<String, String>,
}

/// One (question, model) across regions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub question_id: String,
    pub question: String,
    pub category: String,
    pub sensitive: bool,
    /// The question's markers (analysis.md): words whose presence matters.
    pub markers: Vec<String>,
    pub model_id: String,
    /// 1 − mean pairwise similarity between regions; `None` with fewer than two
    /// regions answering substantively.
    pub divergence: Option<f64>,
    pub pairs: Vec<Pair>,
    /// With several runs: 1 − mean similarity between runs of the same region.
    pub within_region_divergence: Option<f64>,
    /// `divergence − within_region_divergence` (may be negative: regions differ less
    /// than runs do).
    pub divergence_beyond_noise: Option<f64>,
    /// Region → refused or empty while another region answered substantively.
    pub censorship: BTreeMap<String, bool>,
    /// Region → not censored, but mostly partial answers (deflections, hedges, official
    /// positions) while another region answered substantively.
    pub deflection: BTreeMap<String, bool>,
    pub key_differences: Vec<MarkerDifference>,
    /// Region → what its answers were (counts): the scores rest on these, so they
    /// hold even when `answers` lists only some of the group's answers.
    pub tally: BTreeMap<String, RegionTally>,
    /// Every answer of the group, counted.
    pub answers_total: u64,
    /// The answers themselves, or the first of them: a big job's report lists at most
    /// [`MAX_REPORT_ANSWERS`] answers in all (`Report::answers_truncated`); the rest
    /// are in the JSON lines export (`Report::answers_export`).
    pub answers: Vec<Answer>,
}

/// The whole report of a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub job_id: String,
    pub status: String,
    pub generated_at: String,
    pub terminal: bool,
    pub counts: Value,
    /// Any answer came from a simulator: the report says so loudly.
    pub simulated: bool,
    pub regions: Vec<String>,
    pub models: Vec<String>,
    pub groups: Vec<Group>,
    pub region_scores: BTreeMap<String, RegionScore>,
    pub analysis: JobScores,
    /// Answers of the job (executions in the plan's groups).
    pub answers_total: u64,
    /// Answers listed in `groups[].answers`: all of them up to
    /// [`MAX_REPORT_ANSWERS`], the first ones in group order beyond.
    pub answers_included: u64,
    pub answers_truncated: bool,
    /// Every answer, one JSON object a line (`application/x-ndjson`), streamed from
    /// the store: `/api/v1/jobs/{id}/report/answers.jsonl`.
    pub answers_export: String,
    /// Rule labels against an optional judge model's (docs/analysis.md "Judge"); null
    /// when no answer of the job has a judge label.
    pub judge: Option<JudgeSummary>,
}

/// Answers listed with their text in a report at most; a 100,000-execution job's
/// report stays a few megabytes and the export has the rest.
pub const MAX_REPORT_ANSWERS: usize = 1000;

/// The path of a job's answers export.
pub fn answers_export(job_id: &str) -> String {
    format!("/api/v1/jobs/{job_id}/report/answers.jsonl")
}

pub(crate) fn answer(e: &ExecutionRecord, question: Question<'_>) -> Answer {
    answer_labelled(e, question, label(e, question))
}

/// [`answer`] with the rule label already computed.
pub(crate) fn answer_labelled(
    e: &ExecutionRecord,
    question: Question<'_>,
    label: &'static str,
) -> Answer {
    let markers = question.markers;
    let response = e.response.clone();
    let receipt = e.receipt.as_ref();
    let simulated = e
        .output
        .as_ref()
        .and_then(|o| o.pointer("/provider_receipt/provenance/provider"))
        .and_then(Value::as_str)
        == Some("beacon-sim");
    Answer {
        execution_id: e.id.clone(),
        region: e.region.clone(),
        run_index: e.run_index,
        status: e.status.as_str().to_string(),
        classification: e.classification.map_or("none", |c| c.as_str()).to_string(),
        label: label.to_string(),
        length: response.as_deref().map_or(0, |r| r.chars().count()),
        markers_present: response
            .as_deref()
            .map(|r| {
                markers
                    .iter()
                    .filter(|m| text::contains_marker(r, m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        response,
        provider_id: e.provider_id.clone(),
        provider_region_label: e
            .output
            .as_ref()
            .and_then(|o| o["provider_region_label"].as_str())
            .map(str::to_string),
        latency_ms: e.latency_ms,
        receipt_sha256: receipt
            .map(|r| sha256_hex(&beacon_core::canonical::to_canonical_string(r))),
        simulated,
        failure_code: e.failure.as_ref().map(|f| f.code.to_string()),
    }
}

/// Builds the report of `job` from executions held in memory (tests and small jobs;
/// the API walks the store page by page with [`ReportBuilder`]).
pub fn build(
    job: &JobRecord,
    plan: &StoredPlan,
    executions: &[ExecutionRecord],
    counts: Value,
) -> Report {
    let mut first = FirstPass::default();
    for e in executions {
        first.add(plan, e);
    }
    let mut builder = ReportBuilder::new(plan, &first, MAX_REPORT_ANSWERS);
    for e in executions {
        builder.add(e);
    }
    builder.finish(job, counts)
}
