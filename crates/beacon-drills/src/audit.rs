//! The runner's record against what the simulators served. Every execution of a
//! one-run job is one (region, model, prompt), so the simulators' call logs say, per
//! execution, how many calls were made and how each ended; the audit checks that the
//! runner's final status follows from the last call (status mismatch), that every
//! attempt that reached a provider is one logged call with the same result, that
//! nothing was bought twice, that only transient failures were retried, and that no
//! cell appears twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use beacon_core::ErrorCode;
use beacon_core::receipt::sha256_hex;
use beacon_sim::{CallRecord, Outcome};
use serde_json::Value;

use crate::db::AttemptRow;
use crate::fleet::RegionCall;
use crate::spec::{SpecText, question};

/// Execution statuses no execution leaves.
pub const TERMINAL: [&str; 4] = ["completed", "failed", "timeout", "cancelled"];

/// One execution as the runner's API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecView {
    pub id: String,
    pub question_id: String,
    pub model_id: String,
    pub region: String,
    pub run_index: u64,
    pub status: String,
    pub attempts: u32,
    pub classification: Option<String>,
    pub error_code: Option<String>,
}

impl ExecView {
    pub fn from_json(v: &Value) -> anyhow::Result<ExecView> {
        let s = |k: &str| -> anyhow::Result<String> {
            v[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("execution without {k}: {v}"))
        };
        Ok(ExecView {
            id: s("id")?,
            question_id: s("question_id")?,
            model_id: s("model_id")?,
            region: s("region")?,
            run_index: v["run_index"].as_u64().context("no run_index")?,
            status: s("status")?,
            attempts: v["attempts"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .context("no attempts")?,
            classification: v["classification"].as_str().map(str::to_string),
            error_code: v["error_code"].as_str().map(str::to_string),
        })
    }

    /// `question/model/region/run`: the cell's unique key.
    pub fn cell(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.question_id, self.model_id, self.region, self.run_index
        )
    }

    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.status.as_str())
    }
}

/// The API's execution list, typed.
pub fn read_executions(list: &[Value]) -> anyhow::Result<Vec<ExecView>> {
    list.iter().map(ExecView::from_json).collect()
}

/// Cells that appear more than once.
pub fn duplicate_cells(execs: &[ExecView]) -> Vec<String> {
    let mut seen = HashSet::new();
    execs
        .iter()
        .map(ExecView::cell)
        .filter(|c| !seen.insert(c.clone()))
        .collect()
}

/// Executions per status.
pub fn count_statuses(execs: &[ExecView]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in execs {
        *out.entry(e.status.clone()).or_insert(0) += 1;
    }
    out
}

/// prompt SHA-256 → question id, for a job's `questions` inline questions.
pub fn prompt_index(text: &SpecText<'_>, questions: u64) -> HashMap<String, String> {
    (0..questions)
        .map(|i| {
            let (id, prompt) = question(text, i);
            (sha256_hex(&prompt), id)
        })
        .collect()
}

/// A job's calls by cell key `question/model/region/0`, each list in call order;
/// calls of other jobs (prompts not in `prompts`) are left out.
pub fn calls_by_cell<'a>(
    prompts: &HashMap<String, String>,
    calls: &'a [RegionCall],
) -> BTreeMap<String, Vec<&'a CallRecord>> {
    let mut out: BTreeMap<String, Vec<&CallRecord>> = BTreeMap::new();
    for c in calls {
        if let Some(q) = prompts.get(&c.call.prompt_sha256) {
            let key = format!("{q}/{}/{}/0", c.call.model, c.region);
            out.entry(key).or_default().push(&c.call);
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|c| c.id);
    }
    out
}

/// An answer the provider was paid for.
pub fn is_answer(o: Outcome) -> bool {
    matches!(o, Outcome::Ok | Outcome::Empty)
}

/// Provider outcomes that trying again can fix: crashes, broken answers, drops, and a
/// call that never answered (abandoned by the client at its deadline).
pub fn is_transient_outcome(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Http500
            | Outcome::ReportedFailure
            | Outcome::Malformed
            | Outcome::Dropped
            | Outcome::CancelledByClient
    )
}

/// Whether the runner's final record agrees with the call its last attempt made
/// (`None`: that attempt reached no provider).
fn status_agrees(e: &ExecView, last: Option<Outcome>) -> bool {
    let class = e.classification.as_deref();
    match last {
        None => matches!(e.status.as_str(), "failed" | "timeout"),
        Some(Outcome::Ok) => e.status == "completed" && class != Some("empty_response"),
        Some(Outcome::Empty) => e.status == "completed" && class == Some("empty_response"),
        Some(Outcome::CancelledByClient) => e.status == "timeout",
        Some(
            Outcome::Http500
            | Outcome::ReportedFailure
            | Outcome::Malformed
            | Outcome::Dropped
            | Outcome::InferenceBroken
            | Outcome::UnknownModel
            | Outcome::ValidationError,
        ) => e.status == "failed",
        Some(Outcome::Running | Outcome::CancelledByShutdown) => false,
    }
}

/// What the audit found; every list holds one line per offending execution.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub executions: usize,
    pub calls: usize,
    /// Executions with more than one attempt.
    pub retried: usize,
    /// Executions per outcome of the call their last attempt made (`none` when that
    /// attempt reached no provider).
    pub last_outcomes: BTreeMap<String, usize>,
    pub not_terminal: Vec<String>,
    pub duplicate_cells: Vec<String>,
    /// Final status or attempt results that disagree with the simulator's log.
    pub mismatches: Vec<String>,
    /// Cells with an answer followed by another call, or two answers.
    pub bought_twice: Vec<String>,
    /// An attempt retried after a failure that was not transient.
    pub retried_permanent: Vec<String>,
    /// Failed on a transient failure with attempts left.
    pub gave_up_early: Vec<String>,
}

/// Audits a finished one-run job: `execs` from the API, `attempts` from the store,
/// `calls` from the simulators (`prompts` picks this job's), `max_attempts` as the
/// runner was configured.
pub fn audit(
    prompts: &HashMap<String, String>,
    execs: &[ExecView],
    attempts: &[AttemptRow],
    calls: &[RegionCall],
    max_attempts: u32,
) -> Audit {
    let by_cell = calls_by_cell(prompts, calls);
    let mut by_exec: HashMap<&str, Vec<&AttemptRow>> = HashMap::new();
    for a in attempts {
        by_exec.entry(a.execution_id.as_str()).or_default().push(a);
    }
    let mut out = Audit {
        executions: execs.len(),
        calls: by_cell.values().map(Vec::len).sum(),
        duplicate_cells: duplicate_cells(execs),
        ..Audit::default()
    };
    for e in execs {
        let cell = e.cell();
        let calls: &[&CallRecord] = by_cell.get(&cell).map_or(&[], Vec::as_slice);
        let mut tries: Vec<&AttemptRow> = by_exec.get(e.id.as_str()).cloned().unwrap_or_default();
        tries.sort_by_key(|a| a.attempt);
        let outcomes: Vec<Outcome> = calls.iter().map(|c| c.outcome).collect();
        // What the final record follows: the last call, if the last attempt made one
        // (an attempt the router refused, e.g. while it had ejected the region's
        // provider, reached nobody).
        let last = if tries.last().is_some_and(|a| a.provider_id.is_some()) {
            outcomes.last().copied()
        } else {
            None
        };
        *out.last_outcomes
            .entry(last.map_or("none".into(), |o| format!("{o:?}")))
            .or_insert(0) += 1;
        let line = |what: &str| {
            let codes: Vec<&str> = tries
                .iter()
                .map(|a| {
                    a.error_code
                        .as_deref()
                        .or(a.outcome.as_deref())
                        .unwrap_or("?")
                })
                .collect();
            format!(
                "{cell}: {what} (runner: {} {:?} after {} attempts {codes:?}; sim: {outcomes:?})",
                e.status, e.classification, e.attempts
            )
        };
        if !e.is_terminal() {
            out.not_terminal.push(line("not terminal"));
        }
        if e.attempts > 1 {
            out.retried += 1;
        }
        let reached: Vec<&&AttemptRow> = tries.iter().filter(|a| a.provider_id.is_some()).collect();
        if !status_agrees(e, last) {
            out.mismatches
                .push(line("final status disagrees with the last call"));
        } else if tries.len() != e.attempts as usize {
            out.mismatches
                .push(line("attempt rows differ from the attempt count"));
        } else if reached.len() != calls.len() {
            out.mismatches
                .push(line("attempts that reached a provider != calls"));
        } else if reached.iter().zip(calls).any(|(a, c)| {
            is_answer(c.outcome) != matches!(a.outcome.as_deref(), Some("success" | "empty"))
        }) {
            out.mismatches
                .push(line("an attempt's result differs from its call"));
        }
        let answers = outcomes.iter().filter(|o| is_answer(**o)).count();
        if answers > 1 || (answers == 1 && !last.is_some_and(is_answer)) {
            out.bought_twice.push(line("answered more than once"));
        }
        // Every attempt followed by another must have failed transiently, by the
        // runner's code and, when it reached a provider, by what the provider did.
        let outcome_of: HashMap<u32, Outcome> = reached
            .iter()
            .zip(calls)
            .map(|(a, c)| (a.attempt, c.outcome))
            .collect();
        for a in tries.iter().take(tries.len().saturating_sub(1)) {
            let code_transient = a
                .error_code
                .as_deref()
                .is_some_and(|c| ErrorCode::parse(c).default_transient());
            let provider_transient = outcome_of
                .get(&a.attempt)
                .is_none_or(|o| is_transient_outcome(*o));
            if !(code_transient && provider_transient) {
                out.retried_permanent.push(line(&format!(
                    "attempt {} retried after a permanent failure",
                    a.attempt
                )));
            }
        }
        let last_transient = tries
            .last()
            .and_then(|a| a.error_code.as_deref())
            .is_some_and(|c| ErrorCode::parse(c).default_transient())
            && last.is_none_or(is_transient_outcome);
        if matches!(e.status.as_str(), "failed" | "timeout")
            && last_transient
            && e.attempts < max_attempts
        {
            out.gave_up_early.push(line("gave up with attempts left"));
        }
    }
    out
}

/// Answers (`ok`/`empty` calls) per cell of one job.
pub fn answers_per_cell(
    prompts: &HashMap<String, String>,
    calls: &[RegionCall],
) -> BTreeMap<String, usize> {
    calls_by_cell(prompts, calls)
        .into_iter()
        .map(|(cell, list)| (cell, list.iter().filter(|c| is_answer(c.outcome)).count()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(status: &str, class: Option<&str>, attempts: u32) -> ExecView {
        ExecView {
            id: "e1".into(),
            question_id: "q0".into(),
            model_id: "m".into(),
            region: "eu-west".into(),
            run_index: 0,
            status: status.into(),
            attempts,
            classification: class.map(str::to_string),
            error_code: None,
        }
    }

    #[test]
    fn the_final_status_follows_the_last_call() {
        let ok = exec("completed", Some("substantive"), 1);
        assert!(status_agrees(&ok, Some(Outcome::Ok)));
        assert!(!status_agrees(&ok, Some(Outcome::Empty)));
        assert!(!status_agrees(&ok, Some(Outcome::Http500)));
        assert!(!status_agrees(&ok, None));
        let empty = exec("completed", Some("empty_response"), 1);
        assert!(status_agrees(&empty, Some(Outcome::Empty)));
        let hung = exec("timeout", Some("technical_failure"), 3);
        assert!(status_agrees(&hung, Some(Outcome::CancelledByClient)));
        assert!(!status_agrees(&hung, Some(Outcome::Dropped)));
        let failed = exec("failed", None, 1);
        assert!(status_agrees(&failed, Some(Outcome::InferenceBroken)));
        assert!(status_agrees(&failed, None));
        assert!(!status_agrees(&failed, Some(Outcome::Running)));
    }

    #[test]
    fn duplicates_are_found_by_cell() {
        let a = exec("completed", None, 1);
        let mut b = a.clone();
        b.id = "e2".into();
        assert_eq!(duplicate_cells(&[a.clone(), b]), vec![a.cell()]);
        let mut c = a.clone();
        c.run_index = 1;
        assert!(duplicate_cells(&[a, c]).is_empty());
    }
}
