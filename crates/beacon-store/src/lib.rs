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
//!   execution terminal (`beacon_core::status::final_job_status`);
//! - every receipt written is queued for the transparency log in the writing
//!   transaction, and appended entries are numbered densely under one lock and never
//!   changed (docs/store.md "Transparency log").

mod common;
mod judge;
mod postgres;
mod records;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod transparency;

pub use judge::{JUDGE_LABELS, JUDGE_RAW_CHARS, JudgeCandidate, JudgeLabel};
pub use records::*;
pub use transparency::{LogEntry, LogHead, LogLeaf};

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
    /// The group write this write was part of failed with this error (a group commit
    /// gives every member the same error).
    #[error("{0}")]
    Group(std::sync::Arc<StoreError>),
    /// The group write this write was part of was dropped before it ended: whether it
    /// was committed is unknown.
    #[error("the group write was abandoned before it ended")]
    GroupAbandoned,
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the same write can succeed later without anything changing in it: the
    /// database was unreachable, restarting, out of space or busy. A refusal of the
    /// data itself (a constraint, a trigger, an invalid value) is not transient:
    /// repeating it changes nothing. The scheduler retries transient errors (holding a
    /// paid answer in memory until the database is back) and records a
    /// `STORE_WRITE_FAILED` failure for the others.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => transient_sqlx(e),
            StoreError::Group(e) => e.is_transient(),
            StoreError::GroupAbandoned => true,
            StoreError::Migrate(_)
            | StoreError::JobIdConflict(_)
            | StoreError::ReplayedNonce(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::Corrupt(_) => false,
        }
    }
}

impl StoreError {
    /// Whether the database refused a text value it cannot hold (PostgreSQL SQLSTATE
    /// 22021 `character_not_in_repertoire`, e.g. U+0000, and 22P05
    /// `untranslatable_character`). The API validates its inputs so this should not
    /// happen; if one slips through it is the client's bad input (a 4xx), not a 500
    /// quoting the database.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("22021" | "22P05"))
            }
            StoreError::Group(e) => e.is_unstorable_text(),
            _ => false,
        }
    }
}

fn transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed
        | sqlx::Error::InvalidSavePointStatement => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                transient_sqlstate(&code)
            } else {
                transient_sqlite(&code)
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs that describe the server's condition rather than the data:
/// class 08 connection exception, 53 insufficient resources (disk full, out of memory,
/// too many connections), 57 operator intervention (shutdown, crash recovery), 58
/// system errors (I/O); 40001 serialization failure, 40P01 deadlock, 25006 read-only
/// transaction (a failover in progress), 55P03 lock not available.
fn transient_sqlstate(code: &str) -> bool {
    ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
        || ["40001", "40P01", "25006", "55P03"].contains(&code)
}

/// SQLite reports its extended result code as a number whose low byte is the primary
/// code: 5 BUSY, 6 LOCKED, 7 NOMEM, 10 IOERR, 13 FULL, 14 CANTOPEN, 15 PROTOCOL.
fn transient_sqlite(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15))
}

/// A message between runner instances that share one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A user's cancel of this job was committed (sent by `request_cancel`, delivered
    /// when its transaction commits).
    CancelRequested(String),
    /// The instance that ran the job has stopped its calls after a cancel.
    CancelDone(String),
}

/// Signals from other instances, in the order they were sent.
#[async_trait]
pub trait SignalStream: Send {
    /// The next signal; `Ok(None)` when the connection was lost and re-established
    /// (signals sent meanwhile are lost: the caller should look at the state it cares
    /// about again). An error means it could not reconnect yet; call again later.
    async fn recv(&mut self) -> Result<Option<Signal>>;
}

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
    /// One page of a job's executions in job order (`seq` ascending), those after
    /// `after_seq` (keyset pagination: each page is an index range scan, whatever the
    /// depth, so a caller can walk a 100,000-execution job holding one page at a time).
    /// An empty page is the end.
    async fn job_executions_after(
        &self,
        job_id: &str,
        after_seq: Option<u32>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>>;
    async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>>;
    /// Oldest attempt first.
    async fn list_attempts(&self, execution_id: &str) -> Result<Vec<AttemptRecord>>;

    // ---- scheduling (fenced by the lease) ----

    /// Claims the oldest claimable job: `queued`, or `running` with an expired lease,
    /// and not cancel-requested. Sets the lease and `status = running` (and
    /// `started_at` if unset). Executions left `running`/`retrying` by a previous owner
    /// go back to `pending` in the same transaction. PostgreSQL uses
    /// `FOR UPDATE SKIP LOCKED`. Jobs in `running_here` (those the caller is running
    /// right now) are never claimed: when a database outage let the caller's own lease
    /// run out, claiming the job again would start a second run of it in the same
    /// process, whose writes the fence (same owner) would not stop.
    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        running_here: &[String],
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
    /// if unset, and inserts the attempt row. Returns the attempt's number and call
    /// key ([`StartedAttempt`]), or `None` when fenced (lease lost, or the execution is
    /// no longer pending/retrying).
    async fn start_attempt(
        &self,
        execution_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StartedAttempt>>;

    /// Records an attempt's end and the execution's new state. `false` when fenced
    /// (lease lost, or the execution is already terminal, e.g. cancelled). Accepted from
    /// `pending` too, with `attempt: 0`, for an execution that ends without any attempt
    /// (no attempt row is written then). `retrying` keeps no answer fields.
    async fn finish_attempt(&self, update: &AttemptUpdate, owner: &str) -> Result<bool>;

    /// [`Store::start_attempt`] of several executions in one transaction (the runner's
    /// group commit): each is fenced on its own, and the results come in the order of
    /// `execution_ids`, which must be distinct. All or nothing: after an error none of
    /// them was started.
    async fn start_attempts(
        &self,
        execution_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<StartedAttempt>>>;

    /// [`Store::finish_attempt`] of several executions (distinct) in one transaction,
    /// each fenced on its own; results in the order of `updates`. All or nothing.
    async fn finish_attempts(&self, updates: &[AttemptUpdate], owner: &str) -> Result<Vec<bool>>;

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

    // ---- signals between instances ----

    /// Subscribes to other instances' signals. `None` where only one instance can use
    /// the database (SQLite): there is nobody to hear from.
    async fn listen(&self) -> Result<Option<Box<dyn SignalStream>>> {
        Ok(None)
    }

    /// Tells the instance that answered a cancel that this one, which ran the job, has
    /// stopped the job's calls. A no-op where there is a single instance.
    async fn notify_cancel_done(&self, _job_id: &str) -> Result<()> {
        Ok(())
    }

    /// A user's retry of one execution: a `failed` or `timeout` one goes back to
    /// `pending` with its outcome cleared (attempt history kept), and a finished job
    /// back to `queued`. Anything else is left alone and reported. `None` when the
    /// execution does not exist.
    async fn retry_execution(&self, execution_id: &str) -> Result<Option<RetryOutcome>>;

    // ---- diagnostics ----

    /// Non-terminal jobs with their lease.
    async fn leases(&self) -> Result<Vec<LeaseInfo>>;

    // ---- transparency log (docs/store.md "Transparency log") ----

    /// Appends up to `limit` receipts that were stored but are not logged yet (the
    /// database queues every receipt written, in the transaction that writes it), in
    /// queue order, with the next dense sequence numbers, in one transaction. A receipt
    /// already in the log (same leaf hash) is not appended again. Appenders are
    /// serialised (PostgreSQL: a row lock on the log's head; SQLite: `BEGIN
    /// IMMEDIATE`), so instances appending at once never skip or repeat a number.
    /// Returns how many entries were appended.
    async fn append_receipts(&self, limit: u32, now: DateTime<Utc>) -> Result<u64>;

    /// The log's size, last append and how many receipts wait to be appended.
    async fn log_head(&self) -> Result<LogHead>;

    /// Up to `limit` leaves from sequence `from` on, in sequence order.
    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<LogLeaf>>;

    /// The newest entry of an execution (an execution re-run by `retry_failed` has one
    /// per receipt it was given), or `None` when none is logged yet.
    async fn log_entry_for_execution(&self, execution_id: &str) -> Result<Option<LogEntry>>;

    /// The entry with this RFC 6962 leaf hash.
    async fn log_entry_by_leaf_hash(
        &self,
        leaf_hash: &beacon_core::transparency::Hash,
    ) -> Result<Option<LogEntry>>;

    // ---- judge labels (docs/store.md "Judge labels") ----

    /// Up to `page` completed, non-empty answers (stored classification other than
    /// `empty_response`) of finished jobs that have no label of `rubric`, with an
    /// execution id greater than `after` (`""` from the start), in id order: a caller
    /// walks them page by page, skipping what it chose not to label.
    async fn judge_candidates(
        &self,
        rubric: &str,
        after: &str,
        page: u32,
    ) -> Result<Vec<JudgeCandidate>>;

    /// Stores a label; `false` (and nothing changed) when the execution already has
    /// one of that rubric. `raw` is cut to [`JUDGE_RAW_CHARS`] characters.
    async fn insert_judge_label(&self, label: &JudgeLabel) -> Result<bool>;

    /// The labels of `rubric` on a job's executions, in job order.
    async fn judge_labels(&self, job_id: &str, rubric: &str) -> Result<Vec<JudgeLabel>>;

    /// How many labels (any rubric) a job's executions have: a cheap version of them,
    /// so a cached report can tell it is out of date.
    async fn count_judge_labels(&self, job_id: &str) -> Result<u64>;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_transient_refusals_are_not() {
        for code in [
            "08006", "57P01", "57P03", "53100", "58030", "40001", "40P01",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["22021", "23505", "P0001", "42P01", "22P05"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
        // SQLITE_FULL, SQLITE_IOERR_WRITE (778), SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (517).
        for code in ["13", "778", "5", "517", "10"] {
            assert!(transient_sqlite(code), "{code}");
        }
        // SQLITE_CONSTRAINT_CHECK (275), SQLITE_ERROR (a trigger's RAISE(ABORT)), SQLITE_TOOBIG.
        for code in ["275", "1", "18", "x"] {
            assert!(!transient_sqlite(code), "{code}");
        }
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::Corrupt("bad".into()).is_transient());
    }
}
