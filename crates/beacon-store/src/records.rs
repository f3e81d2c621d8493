//! The rows the store reads and writes, as typed values: statuses are enums, JSON
//! columns are `serde_json::Value` or typed objects, times are UTC.

use beacon_core::Failure;
use beacon_core::status::{Classification, ExecutionCounts, ExecutionStatus, JobStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    /// The body exactly as received (it is what was signed).
    pub spec_json: String,
    pub spec_sha256: String,
    pub benchmark: Option<String>,
    /// What the scheduler needs to run the job (questions with texts, models,
    /// regions, runs, options), as JSON; written by the runner, opaque to the store.
    pub plan_json: Value,
    pub min_success_rate: f64,
    /// Regions that must each have a completed execution for the job to complete
    /// (0 = none).
    pub min_regions: u32,
    pub total: u64,
    pub submitter_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub nonce: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One execution to insert with its job.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    /// Position in the job's cell order (dispatch order).
    pub seq: u32,
    pub question_id: String,
    pub model_id: String,
    pub region: String,
    pub run_index: u32,
}

/// What `insert_job` did.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(JobRecord),
    /// The same job was submitted before (same id and body, or same idempotency key).
    Existing(JobRecord),
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub spec_json: String,
    pub spec_sha256: String,
    pub benchmark: Option<String>,
    pub plan_json: Value,
    pub status: JobStatus,
    pub min_success_rate: f64,
    pub min_regions: u32,
    pub total: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Machine code (`below_min_success_rate`, `min_success_rate_unreachable`, …).
    pub failure_reason: Option<String>,
    /// A sentence for humans (counts and threshold).
    pub failure_message: Option<String>,
    pub submitter_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

/// A stored execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub id: String,
    pub job_id: String,
    pub seq: u32,
    pub question_id: String,
    pub model_id: String,
    pub region: String,
    pub run_index: u32,
    pub status: ExecutionStatus,
    pub attempt_count: u32,
    pub provider_id: Option<String>,
    pub response: Option<String>,
    pub response_sha256: Option<String>,
    pub classification: Option<Classification>,
    /// The answer with its provenance (router metadata), as served to clients.
    pub output: Option<Value>,
    pub failure: Option<Failure>,
    pub receipt: Option<Value>,
    pub latency_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When a `retrying` execution's next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub execution_id: String,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `success`, `empty`, `failed`, `timeout`, `cancelled`, `interrupted`.
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub http_status: Option<u16>,
    pub provider_id: Option<String>,
    pub latency_ms: Option<u64>,
    /// The `Idempotency-Key` the attempt sent to the router (see [`StartedAttempt`]);
    /// `None` for attempts stored before keys were recorded.
    pub call_key: Option<String>,
}

/// An attempt just started: its number and the `Idempotency-Key` its router call
/// sends. The key is new (`<execution>:<number>`) unless the attempt before it was
/// interrupted (handed back at shutdown, or its owner died) with its call possibly
/// answered: then it is that attempt's key, so the router replays an answer it already
/// has instead of a provider being paid twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedAttempt {
    pub number: u32,
    pub call_key: String,
}

/// The end of an attempt and the execution's new state.
#[derive(Debug, Clone)]
pub struct AttemptUpdate {
    pub execution_id: String,
    pub attempt: u32,
    /// `completed`, `failed`, `timeout` or `retrying`.
    pub status: ExecutionStatus,
    pub finished_at: DateTime<Utc>,
    pub attempt_outcome: String,
    pub error_code: Option<String>,
    pub http_status: Option<u16>,
    pub provider_id: Option<String>,
    pub latency_ms: Option<u64>,
    pub response: Option<String>,
    pub response_sha256: Option<String>,
    pub classification: Option<Classification>,
    pub output: Option<Value>,
    pub failure: Option<Failure>,
    pub receipt: Option<Value>,
    /// For `retrying`: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What a user's retry of one execution found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOutcome {
    /// The execution's status before the retry.
    pub previous: ExecutionStatus,
    /// `false` when it was not retryable (not failed or timed out, or the job was
    /// cancelled): nothing changed.
    pub requeued: bool,
    /// The job's status after the retry (`queued` when a finished job was reopened).
    pub job_status: JobStatus,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What a user's cancel did.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOutcome {
    pub previous_status: JobStatus,
    pub new_status: JobStatus,
    pub executions_cancelled: u64,
    pub cancelled_at: DateTime<Utc>,
}

/// Filters of `list_jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Taken literally: 0 returns no jobs.
    pub limit: u32,
    pub offset: u32,
    pub status: Option<JobStatus>,
}

/// Filters of `list_executions`. `job_id: None` lists across jobs.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub job_id: Option<String>,
    pub region: Option<String>,
    pub model_id: Option<String>,
    pub question_id: Option<String>,
    pub status: Option<ExecutionStatus>,
    /// Taken literally: 0 returns no items (`total` still counts every match).
    pub limit: u32,
    pub offset: u32,
    /// Newest first (by `created_at`, then `seq` descending); otherwise job order
    /// (`seq` ascending).
    pub newest_first: bool,
}

/// A page of results and how many matched in all.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub jobs: u64,
    pub executions: u64,
    pub nonces: u64,
}

/// A job's lease, for diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseInfo {
    pub job_id: String,
    pub status: JobStatus,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub counts: ExecutionCounts,
}
