//! Backend-neutral pieces shared by the PostgreSQL and SQLite stores: column lists,
//! row decoding, value conversions, the final-status verdict and the execution filter.

use std::collections::HashSet;
use std::time::Duration;

use beacon_core::Failure;
use beacon_core::status::{
    Classification, ExecutionCounts, ExecutionStatus, JobStatus, RegionQuorum, failure_reason,
    final_job_status_with_quorum,
};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::Value;

use crate::{
    AttemptRecord, AttemptUpdate, ExecutionFilter, ExecutionRecord, JobRecord, Result, StoreError,
};

/// The columns `job_from_row` reads, as a literal so it can be `concat!`ed into
/// `&'static str` SQL.
macro_rules! job_cols {
    () => {
        "id, spec_json, spec_sha256, benchmark, plan_json, status, min_success_rate, min_regions, total, \
         created_at, started_at, finished_at, failure_reason, failure_message, submitter_key, \
         idempotency_key, lease_owner, lease_expires_at, cancel_requested_at"
    };
}

/// The columns `execution_from_row` reads.
macro_rules! execution_cols {
    () => {
        "id, job_id, seq, question_id, model_id, region, run_index, status, attempt_count, \
         provider_id, response, response_sha256, classification, output, failure, receipt, \
         latency_ms, created_at, started_at, completed_at, next_attempt_at, updated_at"
    };
}

/// The columns `attempt_from_row` reads.
macro_rules! attempt_cols {
    () => {
        "execution_id, attempt, started_at, finished_at, outcome, error_code, http_status, \
         provider_id, latency_ms, call_key"
    };
}

pub(crate) use {attempt_cols, execution_cols, job_cols};

/// Typed column access, implemented per backend (times differ: TIMESTAMPTZ vs
/// unix milliseconds), so that the record decoders below exist once.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// An answer text, stored so that every character survives (U+0000 included).
    fn opt_answer(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn float(&self, col: &str) -> Result<f64>;
    fn time(&self, col: &str) -> Result<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>>;
}

pub(crate) fn job_from_row(r: &impl RowExt) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.text("id")?,
        spec_json: r.text("spec_json")?,
        spec_sha256: r.text("spec_sha256")?,
        benchmark: r.opt_text("benchmark")?,
        plan_json: parse_json("plan_json", &r.text("plan_json")?)?,
        status: job_status(&r.text("status")?)?,
        min_success_rate: r.float("min_success_rate")?,
        min_regions: to_u32(r.int("min_regions")?)?,
        total: to_u64(r.int("total")?)?,
        created_at: r.time("created_at")?,
        started_at: r.opt_time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
        failure_reason: r.opt_text("failure_reason")?,
        failure_message: r.opt_text("failure_message")?,
        submitter_key: r.opt_text("submitter_key")?,
        idempotency_key: r.opt_text("idempotency_key")?,
        lease_owner: r.opt_text("lease_owner")?,
        lease_expires_at: r.opt_time("lease_expires_at")?,
        cancel_requested_at: r.opt_time("cancel_requested_at")?,
    })
}

pub(crate) fn execution_from_row(r: &impl RowExt) -> Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: r.text("id")?,
        job_id: r.text("job_id")?,
        seq: to_u32(r.int("seq")?)?,
        question_id: r.text("question_id")?,
        model_id: r.text("model_id")?,
        region: r.text("region")?,
        run_index: to_u32(r.int("run_index")?)?,
        status: execution_status(&r.text("status")?)?,
        attempt_count: to_u32(r.int("attempt_count")?)?,
        provider_id: r.opt_text("provider_id")?,
        response: r.opt_answer("response")?,
        response_sha256: r.opt_text("response_sha256")?,
        classification: r
            .opt_text("classification")?
            .map(|c| {
                Classification::parse(&c)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown classification {c:?}")))
            })
            .transpose()?,
        output: r
            .opt_text("output")?
            .map(|t| parse_json("output", &t))
            .transpose()?,
        failure: r
            .opt_text("failure")?
            .map(|t| {
                serde_json::from_str::<Failure>(&t)
                    .map_err(|e| StoreError::Corrupt(format!("failure JSON: {e}")))
            })
            .transpose()?,
        receipt: r
            .opt_text("receipt")?
            .map(|t| parse_json("receipt", &t))
            .transpose()?,
        latency_ms: r.opt_int("latency_ms")?.map(to_u64).transpose()?,
        created_at: r.time("created_at")?,
        started_at: r.opt_time("started_at")?,
        completed_at: r.opt_time("completed_at")?,
        next_attempt_at: r.opt_time("next_attempt_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn attempt_from_row(r: &impl RowExt) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        execution_id: r.text("execution_id")?,
        attempt: to_u32(r.int("attempt")?)?,
        started_at: r.time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
        outcome: r.opt_text("outcome")?,
        error_code: r.opt_text("error_code")?,
        http_status: r
            .opt_int("http_status")?
            .map(|s| u16::try_from(s).map_err(|_| out_of_range("http_status", s)))
            .transpose()?,
        provider_id: r.opt_text("provider_id")?,
        latency_ms: r.opt_int("latency_ms")?.map(to_u64).transpose()?,
        call_key: r.opt_text("call_key")?,
    })
}

/// Inserts attempt `$2` of execution `$1` (started at `$3`) with its call key, which it
/// returns: the key of the attempt before it when that one was interrupted or never
/// closed (its call may have been answered: the router replays that answer for the
/// same key instead of buying it again), else `<execution>:<attempt>`. One statement,
/// the same text on both stores.
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO execution_attempts \
     (execution_id, attempt, started_at, call_key) VALUES ($1, $2, $3, COALESCE(\
     (SELECT COALESCE(p.call_key, p.execution_id || ':' || CAST(p.attempt AS TEXT)) \
     FROM execution_attempts p WHERE p.execution_id = $1 AND p.attempt = $2 - 1 \
     AND (p.outcome IS NULL OR p.outcome = 'interrupted')), \
     $1 || ':' || CAST($2 AS TEXT))) RETURNING call_key";

pub(crate) fn job_status(s: &str) -> Result<JobStatus> {
    JobStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job status {s:?}")))
}

pub(crate) fn execution_status(s: &str) -> Result<ExecutionStatus> {
    ExecutionStatus::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown execution status {s:?}")))
}

fn parse_json(col: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{col} JSON: {e}")))
}

pub(crate) fn json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode JSON: {e}")))
}

fn out_of_range(what: &str, v: i64) -> StoreError {
    StoreError::Corrupt(format!("{what} out of range: {v}"))
}

pub(crate) fn to_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| out_of_range("integer", v))
}

pub(crate) fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| out_of_range("integer", v))
}

pub(crate) fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("integer out of range: {v}")))
}

/// Both backends keep times to the millisecond (SQLite stores unix milliseconds), so
/// PostgreSQL values are truncated the same way and a record reads back identically
/// whatever the backend.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// `now + lease`, saturating (a lease too long to represent never expires).
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map_or(DateTime::<Utc>::MAX_UTC, ms)
}

/// Folds `(status, count)` rows into counts.
pub(crate) fn add_count(counts: &mut ExecutionCounts, status: &str, n: i64) -> Result<()> {
    counts.add(execution_status(status)?, to_u64(n)?);
    Ok(())
}

/// What finalize writes: the final status with its reason and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub status: JobStatus,
    pub reason: Option<String>,
    pub message: String,
}

/// The job's final status per `beacon_core::status::final_job_status`, or `None` while
/// any execution is unfinished (or there are none). `stored_reason` is
/// `jobs.failure_reason` recorded by an early stop (`cancel_unfinished`).
pub(crate) fn verdict(
    counts: &ExecutionCounts,
    min_success_rate: f64,
    quorum: RegionQuorum,
    cancel_requested: bool,
    stored_reason: Option<&str>,
) -> Option<Verdict> {
    // final_job_status wants a `&'static str`; the known reasons map onto beacon-core's
    // constants. A reason this build does not know is still kept verbatim below.
    let known = stored_reason.and_then(|r| {
        [
            failure_reason::MIN_SUCCESS_RATE_UNREACHABLE,
            failure_reason::BELOW_MIN_SUCCESS_RATE,
            failure_reason::JOB_TIMEOUT,
            failure_reason::BELOW_MIN_REGIONS,
        ]
        .into_iter()
        .find(|k| *k == r)
    });
    let fin =
        final_job_status_with_quorum(counts, min_success_rate, quorum, cancel_requested, known)?;
    let reason = match (fin.status, stored_reason) {
        (JobStatus::Failed, Some(stored)) => Some(stored.to_string()),
        _ => fin.reason.map(str::to_string),
    };
    Some(Verdict {
        status: fin.status,
        reason,
        message: fin.message,
    })
}

/// A user's cancel of a job that has no executions at all: `final_job_status` has no
/// verdict for an empty job, but the cancel must still end it.
pub(crate) fn empty_job_cancel_verdict() -> Verdict {
    Verdict {
        status: JobStatus::Cancelled,
        reason: None,
        message: "cancelled by a user; the job has no executions".to_string(),
    }
}

/// What a retry clears: everything the failed round wrote about its outcome.
/// `attempt_count` and the attempt rows stay (attempt numbers keep counting).
pub(crate) const RETRY_CLEARS: &str = "provider_id = NULL, response = NULL, response_sha256 = NULL, \
     classification = NULL, output = NULL, failure = NULL, receipt = NULL, error_code = NULL, \
     latency_ms = NULL, completed_at = NULL, next_attempt_at = NULL";

/// Whether a user may retry this execution: it failed or timed out, and its job was
/// not cancelled by a user.
pub(crate) fn retryable(e: &ExecutionRecord, job: &JobRecord) -> bool {
    matches!(e.status, ExecutionStatus::Failed | ExecutionStatus::Timeout)
        && job.cancel_requested_at.is_none()
}

/// `LIMIT` value. 0 is taken literally (no items, only `total`): an unset limit must
/// never turn into an unbounded read of a 100,000-execution job.
pub(crate) fn limit(l: u32) -> i64 {
    i64::from(l)
}

/// The WHERE/ORDER BY of `list_executions`, built only from constant fragments and
/// numbered placeholders (`$1`…, understood by both backends); `binds` holds the
/// values for those placeholders in order.
pub(crate) struct ExecutionQuery {
    pub where_sql: String,
    pub order_sql: &'static str,
    pub binds: Vec<String>,
}

pub(crate) fn execution_query(f: &ExecutionFilter) -> ExecutionQuery {
    let mut where_sql = String::new();
    let mut binds = Vec::new();
    let fields: [(&'static str, Option<&str>); 5] = [
        ("job_id", f.job_id.as_deref()),
        ("region", f.region.as_deref()),
        ("model_id", f.model_id.as_deref()),
        ("question_id", f.question_id.as_deref()),
        ("status", f.status.map(|s| s.as_str())),
    ];
    for (col, value) in fields {
        if let Some(v) = value {
            binds.push(v.to_string());
            where_sql.push_str(if where_sql.is_empty() {
                " WHERE "
            } else {
                " AND "
            });
            where_sql.push_str(col);
            where_sql.push_str(" = $");
            where_sql.push_str(&binds.len().to_string());
        }
    }
    // Within a job every execution has the job's created_at, so job order is seq; across
    // jobs, jobs are ordered by creation and then id. `id` breaks any remaining tie so
    // pages never overlap.
    let order_sql = match (f.job_id.is_some(), f.newest_first) {
        (true, false) => " ORDER BY seq, id",
        (true, true) => " ORDER BY seq DESC, id DESC",
        (false, false) => " ORDER BY created_at, job_id, seq, id",
        (false, true) => " ORDER BY created_at DESC, job_id DESC, seq DESC, id DESC",
    };
    ExecutionQuery {
        where_sql,
        order_sql,
        binds,
    }
}

/// The values `finish_attempt` writes, decided once for both backends.
pub(crate) struct FinishRow {
    pub status: &'static str,
    pub provider_id: Option<String>,
    pub response: Option<String>,
    pub response_sha256: Option<String>,
    pub classification: Option<&'static str>,
    pub output: Option<String>,
    pub failure: Option<String>,
    pub receipt: Option<String>,
    /// The execution's copy of `failure.code`.
    pub error_code: Option<String>,
    pub latency_ms: Option<i64>,
    pub completed_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// The attempt row's code: the update's own, else the failure's.
    pub attempt_error_code: Option<String>,
    pub http_status: Option<i64>,
    /// Attempt 0 means the execution ended without an attempt (the runner could not
    /// even build the call): there is no attempt row to write.
    pub attempt: Option<i64>,
}

/// Validates and prepares an `AttemptUpdate`. An attempt ends an execution (terminal
/// status, `completed_at` set) or sends it to `retrying` (no answer kept: response,
/// classification, output and receipt stay null; `next_attempt_at` set).
pub(crate) fn finish_row(u: &AttemptUpdate) -> Result<FinishRow> {
    let retrying = u.status == ExecutionStatus::Retrying;
    if !(u.status.is_terminal() || retrying) {
        return Err(StoreError::Corrupt(format!(
            "finish_attempt cannot set status {}: an attempt ends completed, failed, timeout, \
             cancelled or retrying",
            u.status
        )));
    }
    let finished_at = ms(u.finished_at);
    let answer = !retrying;
    Ok(FinishRow {
        status: u.status.as_str(),
        provider_id: u.provider_id.clone(),
        response: u.response.clone().filter(|_| answer),
        response_sha256: u.response_sha256.clone().filter(|_| answer),
        classification: u
            .classification
            .map(Classification::as_str)
            .filter(|_| answer),
        output: u
            .output
            .as_ref()
            .filter(|_| answer)
            .map(json_text)
            .transpose()?,
        failure: u.failure.as_ref().map(json_text).transpose()?,
        receipt: u
            .receipt
            .as_ref()
            .filter(|_| answer)
            .map(json_text)
            .transpose()?,
        error_code: error_code_of(u.failure.as_ref(), u.error_code.as_deref()),
        latency_ms: u.latency_ms.map(to_i64).transpose()?,
        completed_at: answer.then_some(finished_at),
        next_attempt_at: if retrying {
            u.next_attempt_at.map(ms)
        } else {
            None
        },
        finished_at,
        attempt_error_code: u
            .error_code
            .clone()
            .or_else(|| error_code_of(u.failure.as_ref(), None)),
        http_status: u.http_status.map(i64::from),
        attempt: (u.attempt > 0).then(|| i64::from(u.attempt)),
    })
}

/// The error code stored next to a failure (copied for grouping without JSON).
fn error_code_of(failure: Option<&Failure>, fallback: Option<&str>) -> Option<String> {
    failure
        .map(|f| f.code.as_str().to_string())
        .or_else(|| fallback.map(str::to_string))
}

/// A write's executions must be distinct: two writes of one execution in one
/// statement would race each other inside it.
pub(crate) fn distinct<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(StoreError::Corrupt(format!(
                "execution {id} appears twice in one group write"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_keeps_early_stop_reasons() {
        let counts = ExecutionCounts {
            completed: 1,
            cancelled: 2,
            ..Default::default()
        };
        let v = verdict(
            &counts,
            0.67,
            RegionQuorum::default(),
            false,
            Some("min_success_rate_unreachable"),
        )
        .unwrap();
        assert_eq!(v.status, JobStatus::Failed);
        assert_eq!(v.reason.as_deref(), Some("min_success_rate_unreachable"));
        let v = verdict(
            &counts,
            0.67,
            RegionQuorum::default(),
            false,
            Some("operator_stop"),
        )
        .unwrap();
        assert_eq!(v.reason.as_deref(), Some("operator_stop"));
        let v = verdict(
            &counts,
            0.3,
            RegionQuorum::default(),
            false,
            Some("job_timeout"),
        )
        .unwrap();
        assert_eq!((v.status, v.reason), (JobStatus::Completed, None));
        let v = verdict(&counts, 0.67, RegionQuorum::default(), true, None).unwrap();
        assert_eq!(v.status, JobStatus::Cancelled);
        assert!(
            verdict(
                &ExecutionCounts::default(),
                0.5,
                RegionQuorum::default(),
                true,
                None
            )
            .is_none()
        );
    }

    #[test]
    fn execution_query_numbers_placeholders_in_bind_order() {
        let q = execution_query(&ExecutionFilter {
            job_id: Some("j".into()),
            status: Some(ExecutionStatus::Failed),
            ..Default::default()
        });
        assert_eq!(q.where_sql, " WHERE job_id = $1 AND status = $2");
        assert_eq!(q.binds, vec!["j".to_string(), "failed".to_string()]);
        assert_eq!(q.order_sql, " ORDER BY seq, id");
    }

    #[test]
    fn lease_until_saturates() {
        let now = Utc::now();
        assert_eq!(lease_until(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert!(lease_until(now, Duration::from_secs(30)) > now);
    }
}
