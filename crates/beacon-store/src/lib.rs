//! beacon-store: the runner's durable state behind one [`Store`] trait, with a
//! PostgreSQL backend (production, many runner instances) and a SQLite backend
//! (embedded default, one instance). The backend is chosen by the `DATABASE_URL`
//! scheme. One contract test suite runs against both.
//!
//! Invariants every backend keeps:
//! - all executions of a job are inserted in the transaction that accepts the job;
//!   `(job_id, question_id, model_id, region, run_index)` is unique;
//! - scheduler writes are fenced: they take effect only while the caller owns the
//!   job's lease, and never overwrite a terminal execution;
//! - a job's final status is computed once, in the transaction that observes every
//!   execution terminal (`beacon_core::status::final_job_status`).

mod common;
mod postgres;
mod records;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;

pub use records::*;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use beacon_core::status::ExecutionCounts;
use chrono::{DateTime, Utc};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another job already has this id with a different body.
    #[error("job id {0} already exists with a different spec")]
    JobIdConflict(String),
    /// The spec's `metadata.nonce` was seen before.
    #[error("nonce {0} was already used")]
    ReplayedNonce(String),
    /// `DATABASE_URL` is not a supported URL.
    #[error("unsupported DATABASE_URL {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (corrupt JSON, unknown status).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The runner's storage. Every method is one transaction unless it says otherwise.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<()>;

    // ---- accepting jobs ----

    /// Inserts the job, its nonce (if any) and every execution in one transaction.
    /// An existing job with the same id and the same `spec_sha256`, or with the same
    /// idempotency key, is returned as [`Inserted::Existing`] and nothing is written;
    /// the same id with another spec is [`StoreError::JobIdConflict`]; a nonce seen
    /// before is [`StoreError::ReplayedNonce`] (and nothing is written).
    async fn insert_job(&self, job: &NewJob, executions: &[NewExecution]) -> Result<Inserted>;

    async fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;
    async fn find_job_by_idempotency_key(&self, key: &str) -> Result<Option<JobRecord>>;
    /// Newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>>;
    /// Executions per status of one job.
    async fn counts(&self, job_id: &str) -> Result<ExecutionCounts>;
    /// Executions per status for several jobs at once (list views).
    async fn counts_many(&self, job_ids: &[String]) -> Result<Vec<(String, ExecutionCounts)>>;
    /// Jobs and executions stored; for tests and diagnostics ("nothing persisted").
    async fn totals(&self) -> Result<Totals>;

    // ---- reading executions ----

    /// Filtered and paginated; `total` counts every match.
    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Page<ExecutionRecord>>;
    async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>>;
    /// Oldest attempt first.
    async fn list_attempts(&self, execution_id: &str) -> Result<Vec<AttemptRecord>>;

    // ---- scheduling (fenced by the lease) ----

    /// Claims the oldest claimable job: `queued`, or `running` with an expired lease,
    /// and not cancel-requested. Sets the lease and `status = running` (and
    /// `started_at` if unset). Executions left `running`/`retrying` by a previous owner
    /// go back to `pending` in the same transaction. PostgreSQL uses
    /// `FOR UPDATE SKIP LOCKED`.
    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRecord>>;

    /// Extends the lease; `false` if `owner` no longer holds it (lost: stop writing).
    async fn renew_lease(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Gives the lease up (shutdown, or the job is finished).
    async fn release_lease(&self, job_id: &str, owner: &str) -> Result<()>;

    /// Up to `limit` `pending` executions of the job in `seq` order, skipping ids in
    /// `exclude` (already dispatched by the caller).
    async fn pending_executions(
        &self,
        job_id: &str,
        limit: u32,
        exclude: &[String],
    ) -> Result<Vec<ExecutionRecord>>;

    /// Marks the execution `running`, increments `attempt_count`, sets `started_at`
    /// if unset, and inserts the attempt row. Returns the attempt number, or `None`
    /// when fenced (lease lost, or the execution is no longer pending/retrying).
    async fn start_attempt(
        &self,
        execution_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>>;

    /// Records an attempt's end and the execution's new state. `false` when fenced
    /// (lease lost, or the execution is already terminal, e.g. cancelled). Accepted from
    /// `pending` too, with `attempt: 0`, for an execution that ends without any attempt
    /// (no attempt row is written then). `retrying` keeps no answer fields.
    async fn finish_attempt(&self, update: &AttemptUpdate, owner: &str) -> Result<bool>;

    /// Shutdown hand-back: every `running`/`retrying` execution of the job goes back
    /// to `pending` (fenced). Returns how many.
    async fn requeue_unfinished(&self, job_id: &str, owner: &str) -> Result<u64>;

    /// Cancels every non-terminal execution of the job with `failure` (code
    /// `CANCELLED`), records `reason` as the job's early-stop reason when given, and
    /// finalizes the job if that made everything terminal. Not fenced: a user's cancel
    /// must win over any owner. Returns how many executions were cancelled.
    async fn cancel_unfinished(
        &self,
        job_id: &str,
        failure: &beacon_core::Failure,
        reason: Option<&str>,
    ) -> Result<u64>;

    /// Marks a user's cancel request (`cancel_requested_at`), cancels every
    /// non-terminal execution and finalizes the job as `cancelled`, in one
    /// transaction. A job already terminal is left as it is.
    async fn request_cancel(
        &self,
        job_id: &str,
        failure: &beacon_core::Failure,
        now: DateTime<Utc>,
    ) -> Result<Option<CancelOutcome>>;

    /// If every execution is terminal and the job is not, computes and stores the final
    /// status (with `beacon_core::status::final_job_status`), sets `finished_at`, clears
    /// the lease, and returns the updated job. Otherwise `None`.
    async fn finalize_job(&self, job_id: &str, now: DateTime<Utc>) -> Result<Option<JobRecord>>;

    /// Re-queues `failed` and `timeout` executions of a finished (completed or failed)
    /// job and sets the job back to `queued` (clearing finish time and reason).
    /// Returns how many executions were re-queued; 0 leaves the job untouched.
    async fn retry_failed(&self, job_id: &str) -> Result<u64>;

    // ---- diagnostics ----

    /// Non-terminal jobs with their lease.
    async fn leases(&self) -> Result<Vec<LeaseInfo>>;
}

/// Opens the store a `DATABASE_URL` names and applies its migrations:
/// `postgres://…`/`postgresql://…` or `sqlite://PATH` / `sqlite:PATH` (created if missing,
/// with its directory; WAL mode).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
