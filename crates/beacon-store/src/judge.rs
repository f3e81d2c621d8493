//! Judge labels (docs/store.md "Judge labels"): the rows an optional judge model's
//! verdicts are kept in, the answers still waiting for one, and the decoding both
//! backends share. One label per (execution, rubric version); a label is never
//! changed, so a second writer of the same label is a no-op.

use chrono::{DateTime, Utc};

use crate::Result;
use crate::common::RowExt;

/// A completed answer of a finished job that has no label for a rubric yet.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeCandidate {
    pub execution_id: String,
    pub job_id: String,
    pub question_id: String,
    pub model_id: String,
    pub region: String,
    pub response: String,
}

/// A judge's verdict on one answer, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeLabel {
    pub execution_id: String,
    /// The rubric version that produced it (`beacon-judge-v1`, …).
    pub rubric: String,
    /// `refusal`, `partial`, `substantive` or `unparsed` (the reply named none of them).
    pub label: String,
    /// The judge model asked.
    pub model: String,
    pub provider_id: Option<String>,
    /// The judge's reply, at most 500 characters of it.
    pub raw: String,
    pub created_at: DateTime<Utc>,
}

/// The labels the table accepts (its CHECK constraint).
pub const JUDGE_LABELS: [&str; 4] = ["refusal", "partial", "substantive", "unparsed"];

/// Characters of the judge's reply kept.
pub const JUDGE_RAW_CHARS: usize = 500;

/// The finder's query (both backends; the columns [`candidate_from_row`] reads): completed, non-empty answers of finished jobs,
/// after a cursor, without a label of the rubric, in id order. `$1` rubric, `$2` cursor
/// (an execution id; `''` from the start), `$3` page size.
macro_rules! judge_candidates_sql {
    () => {
        concat!(
            "SELECT e.id, e.job_id, e.question_id, e.model_id, e.region, e.response",
            " FROM executions e JOIN jobs j ON j.id = e.job_id \
             WHERE e.status = 'completed' AND e.id > $2 \
             AND (e.classification IS NULL OR e.classification <> 'empty_response') \
             AND j.status IN ('completed', 'failed', 'cancelled') \
             AND NOT EXISTS (SELECT 1 FROM judge_labels l \
                             WHERE l.execution_id = e.id AND l.rubric = $1) \
             ORDER BY e.id LIMIT $3"
        )
    };
}

/// A job's labels of one rubric, in job order (the columns [`label_from_row`] reads). `$1` job id, `$2` rubric.
macro_rules! judge_labels_sql {
    () => {
        concat!(
            "SELECT l.execution_id, l.rubric, l.label, l.model, l.provider_id, l.raw, l.created_at",
            " FROM judge_labels l JOIN executions e ON e.id = l.execution_id \
             WHERE e.job_id = $1 AND l.rubric = $2 ORDER BY e.seq"
        )
    };
}

/// Labels of a job, all rubrics. `$1` job id.
pub(crate) const COUNT_LABELS_SQL: &str = "SELECT COUNT(*) FROM judge_labels l \
     JOIN executions e ON e.id = l.execution_id WHERE e.job_id = $1";

/// Stores a label unless the execution has one of that rubric.
pub(crate) const INSERT_LABEL_SQL: &str = "INSERT INTO judge_labels \
     (execution_id, rubric, label, model, provider_id, raw, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (execution_id, rubric) DO NOTHING";

pub(crate) use {judge_candidates_sql, judge_labels_sql};

pub(crate) fn candidate_from_row(r: &impl RowExt) -> Result<JudgeCandidate> {
    Ok(JudgeCandidate {
        execution_id: r.text("id")?,
        job_id: r.text("job_id")?,
        question_id: r.text("question_id")?,
        model_id: r.text("model_id")?,
        region: r.text("region")?,
        response: r.opt_answer("response")?.unwrap_or_default(),
    })
}

pub(crate) fn label_from_row(r: &impl RowExt) -> Result<JudgeLabel> {
    Ok(JudgeLabel {
        execution_id: r.text("execution_id")?,
        rubric: r.text("rubric")?,
        label: r.text("label")?,
        model: r.text("model")?,
        provider_id: r.opt_text("provider_id")?,
        raw: r.text("raw")?,
        created_at: r.time("created_at")?,
    })
}

/// The reply as stored: its first [`JUDGE_RAW_CHARS`] characters.
pub(crate) fn raw_text(raw: &str) -> String {
    raw.chars().take(JUDGE_RAW_CHARS).collect()
}
