//! The SQLite backend (embedded default, one runner instance): connection settings
//! and the read paths. Write transactions live in `tx.rs`, job acceptance in
//! `insert.rs`, scheduling writes in `scheduling.rs`, group writes in `batch.rs`.
//!
//! Times are INTEGER unix milliseconds. Every write transaction starts with
//! `BEGIN IMMEDIATE`: it takes SQLite's single write lock up front, so a transaction
//! never reads under a shared lock and then fails to upgrade (SQLITE_BUSY without
//! waiting), and the whole transaction is serialized against other writers — which
//! is what PostgreSQL gets from row locks.

mod batch;
mod insert;
mod judge;
mod listing;
mod retry;
mod scheduling;
mod transparency;
mod tx;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use beacon_core::Failure;
use beacon_core::status::ExecutionCounts;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use crate::common::{self, RowExt, attempt_cols, execution_cols, job_cols, json_text};
use crate::{
    AttemptRecord, AttemptUpdate, CancelOutcome, ExecutionFilter, ExecutionRecord, Inserted,
    JobFilter, JobRecord, LeaseInfo, NewExecution, NewJob, Page, Result, StartedAttempt, Store,
    StoreError, Totals,
};

/// Readers run in parallel under WAL; writers queue on the write lock.
const MAX_CONNECTIONS: u32 = 8;

/// How long a writer waits for the write lock before SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct SqliteStore {
    pool: SqlitePool,
    /// Writers of this process take turns here before `BEGIN IMMEDIATE`. SQLite admits
    /// one writer at a time anyway; an async mutex wakes the next writer as soon as the
    /// lock is free, where SQLite's busy handler polls with sleeps of up to 100 ms
    /// (32 concurrent workers, debug build: ~320 → ~450 attempts/s).
    write_turn: Arc<Mutex<()>>,
}

type Tx = Transaction<'static, Sqlite>;

/// A time as stored: unix milliseconds.
fn t(dt: DateTime<Utc>) -> i64 {
    dt.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupt(format!("time out of range: {v}")))
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database file in WAL mode
    /// and applies `migrations/sqlite`.
    pub(crate) async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL at every commit: a finished execution survives a power
            // cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            write_turn: Arc::new(Mutex::new(())),
        })
    }
}

impl RowExt for SqliteRow {
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_answer(&self, col: &str) -> Result<Option<String>> {
        // SQLite TEXT keeps its length, so U+0000 survives as it is.
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn float(&self, col: &str) -> Result<f64> {
        Ok(self.try_get(col)?)
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        from_ms(self.try_get(col)?)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(col)?
            .map(from_ms)
            .transpose()
    }
}

/// Counts executions of one job per status, inside a transaction or on the pool.
pub(super) async fn counts_in<'e, E>(exec: E, job_id: &str) -> Result<ExecutionCounts>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM executions WHERE job_id = $1 GROUP BY status",
    )
    .bind(job_id)
    .fetch_all(exec)
    .await?;
    let mut counts = ExecutionCounts::default();
    for row in rows {
        common::add_count(
            &mut counts,
            &row.try_get::<String, _>("status")?,
            row.try_get("n")?,
        )?;
    }
    Ok(counts)
}

impl SqliteStore {
    async fn counts_many_impl(&self, job_ids: &[String]) -> Result<Vec<(String, ExecutionCounts)>> {
        // One parameter whatever the number of ids: a JSON array unpacked by json_each.
        let rows = sqlx::query(
            "SELECT job_id, status, COUNT(*) AS n FROM executions \
             WHERE job_id IN (SELECT value FROM json_each($1)) GROUP BY job_id, status",
        )
        .bind(json_text(&job_ids)?)
        .fetch_all(&self.pool)
        .await?;
        let mut by_job: HashMap<String, ExecutionCounts> = HashMap::new();
        for row in rows {
            let status: String = row.try_get("status")?;
            let counts = by_job.entry(row.try_get("job_id")?).or_default();
            common::add_count(counts, &status, row.try_get("n")?)?;
        }
        Ok(job_ids
            .iter()
            .map(|id| (id.clone(), by_job.get(id).copied().unwrap_or_default()))
            .collect())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_job(&self, job: &NewJob, executions: &[NewExecution]) -> Result<Inserted> {
        let mut tx = self.write_tx().await?;
        let out = Self::insert_job_in(&mut tx, job, executions).await;
        tx.end(out).await
    }

    async fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(common::job_from_row).transpose()
    }

    async fn find_job_by_idempotency_key(&self, key: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(common::job_from_row).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE ($1 IS NULL OR status = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(common::limit(filter.limit))
        .bind(i64::from(filter.offset))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::job_from_row).collect()
    }

    async fn counts(&self, job_id: &str) -> Result<ExecutionCounts> {
        counts_in(&self.pool, job_id).await
    }

    async fn counts_many(&self, job_ids: &[String]) -> Result<Vec<(String, ExecutionCounts)>> {
        self.counts_many_impl(job_ids).await
    }

    async fn totals(&self) -> Result<Totals> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs) AS jobs, (SELECT COUNT(*) FROM executions) AS executions, \
             (SELECT COUNT(*) FROM nonces) AS nonces",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Totals {
            jobs: common::to_u64(row.try_get("jobs")?)?,
            executions: common::to_u64(row.try_get("executions")?)?,
            nonces: common::to_u64(row.try_get("nonces")?)?,
        })
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Page<ExecutionRecord>> {
        self.list_executions_impl(filter).await
    }

    async fn job_executions_after(
        &self,
        job_id: &str,
        after_seq: Option<u32>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>> {
        self.job_executions_after_impl(job_id, after_seq, limit)
            .await
    }

    async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(common::execution_from_row).transpose()
    }

    async fn list_attempts(&self, execution_id: &str) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM execution_attempts WHERE execution_id = $1 ORDER BY attempt"
        ))
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::attempt_from_row).collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        running_here: &[String],
    ) -> Result<Option<JobRecord>> {
        let mut tx = self.write_tx().await?;
        let out = Self::claim_job_in(&mut tx, owner, lease, now, running_here).await;
        tx.end(out).await
    }

    async fn renew_lease(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.renew_lease_impl(job_id, owner, lease, now).await
    }

    async fn release_lease(&self, job_id: &str, owner: &str) -> Result<()> {
        self.release_lease_impl(job_id, owner).await
    }

    async fn pending_executions(
        &self,
        job_id: &str,
        limit: u32,
        exclude: &[String],
    ) -> Result<Vec<ExecutionRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 AND status = 'pending' \
             AND id NOT IN (SELECT value FROM json_each($2)) ORDER BY seq LIMIT $3"
        ))
        .bind(job_id)
        .bind(json_text(&exclude)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::execution_from_row).collect()
    }

    async fn start_attempt(
        &self,
        execution_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StartedAttempt>> {
        let mut tx = self.write_tx().await?;
        let out = Self::start_attempt_in(&mut tx, execution_id, owner, now).await;
        tx.end(out).await
    }

    async fn finish_attempt(&self, update: &AttemptUpdate, owner: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let out = Self::finish_attempt_in(&mut tx, update, owner).await;
        tx.end(out).await
    }

    async fn start_attempts(
        &self,
        execution_ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<StartedAttempt>>> {
        self.start_attempts_impl(execution_ids, owner, now).await
    }

    async fn finish_attempts(&self, updates: &[AttemptUpdate], owner: &str) -> Result<Vec<bool>> {
        self.finish_attempts_impl(updates, owner).await
    }

    async fn requeue_unfinished(&self, job_id: &str, owner: &str) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let out = Self::requeue_unfinished_in(&mut tx, job_id, owner).await;
        tx.end(out).await
    }

    async fn cancel_unfinished(
        &self,
        job_id: &str,
        failure: &Failure,
        reason: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let out = Self::cancel_unfinished_in(&mut tx, job_id, failure, reason).await;
        tx.end(out).await
    }

    async fn request_cancel(
        &self,
        job_id: &str,
        failure: &Failure,
        now: DateTime<Utc>,
    ) -> Result<Option<CancelOutcome>> {
        let mut tx = self.write_tx().await?;
        let out = Self::request_cancel_in(&mut tx, job_id, failure, now).await;
        tx.end(out).await
    }

    async fn finalize_job(&self, job_id: &str, now: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.write_tx().await?;
        let out = scheduling::finalize_in(&mut tx, job_id, now).await;
        tx.end(out).await
    }

    async fn retry_failed(&self, job_id: &str) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let out = Self::retry_failed_in(&mut tx, job_id).await;
        tx.end(out).await
    }

    async fn retry_execution(&self, execution_id: &str) -> Result<Option<crate::RetryOutcome>> {
        let mut tx = self.write_tx().await?;
        let out = Self::retry_execution_in(&mut tx, execution_id).await;
        tx.end(out).await
    }

    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let jobs = rows
            .iter()
            .map(common::job_from_row)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let counts = self.counts_many_impl(&ids).await?;
        Ok(jobs
            .into_iter()
            .zip(counts)
            .map(|(j, (_, counts))| LeaseInfo {
                job_id: j.id,
                status: j.status,
                lease_owner: j.lease_owner,
                lease_expires_at: j.lease_expires_at,
                counts,
            })
            .collect())
    }

    async fn append_receipts(&self, limit: u32, now: DateTime<Utc>) -> Result<u64> {
        self.append_receipts_impl(limit, now).await
    }

    async fn log_head(&self) -> Result<crate::LogHead> {
        self.log_head_impl().await
    }

    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<crate::LogLeaf>> {
        self.log_leaves_impl(from, limit).await
    }

    async fn log_entry_for_execution(&self, execution_id: &str) -> Result<Option<crate::LogEntry>> {
        self.log_entry_for_execution_impl(execution_id).await
    }

    async fn log_entry_by_leaf_hash(
        &self,
        leaf_hash: &beacon_core::transparency::Hash,
    ) -> Result<Option<crate::LogEntry>> {
        self.log_entry_by_leaf_hash_impl(leaf_hash).await
    }

    async fn judge_candidates(
        &self,
        rubric: &str,
        after: &str,
        page: u32,
    ) -> Result<Vec<crate::JudgeCandidate>> {
        self.judge_candidates_impl(rubric, after, page).await
    }

    async fn insert_judge_label(&self, label: &crate::JudgeLabel) -> Result<bool> {
        self.insert_judge_label_impl(label).await
    }

    async fn judge_labels(&self, job_id: &str, rubric: &str) -> Result<Vec<crate::JudgeLabel>> {
        self.judge_labels_impl(job_id, rubric).await
    }

    async fn count_judge_labels(&self, job_id: &str) -> Result<u64> {
        self.count_judge_labels_impl(job_id).await
    }
}
