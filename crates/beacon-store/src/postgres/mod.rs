//! The PostgreSQL backend: connection, transactions and the read paths. Job
//! acceptance lives in `insert.rs`; the scheduling writes (leases, attempts, cancel,
//! finalize) in `scheduling.rs`.

mod batch;
mod insert;
mod judge;
mod retry;
mod scheduling;
mod signals;
mod transparency;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use beacon_core::Failure;
use beacon_core::status::ExecutionCounts;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, PgPool, Postgres, Row, Transaction};

use crate::common::{self, RowExt, attempt_cols, execution_cols, job_cols};
use crate::{
    AttemptRecord, AttemptUpdate, CancelOutcome, ExecutionFilter, ExecutionRecord, Inserted,
    JobFilter, JobRecord, LeaseInfo, NewExecution, NewJob, Page, Result, StartedAttempt, Store,
    Totals,
};

/// Runner instances share one server; 16 connections per instance keeps a handful of
/// instances well under PostgreSQL's default `max_connections` (100).
const MAX_CONNECTIONS: u32 = 16;

pub(crate) struct PgStore {
    pool: PgPool,
}

type Tx = Transaction<'static, Postgres>;

/// Ends `tx`: commits when `out` is `Ok`, rolls back when it is an error. Always
/// explicitly: a dropped transaction's ROLLBACK is only sent when its connection is
/// next used, so its row locks would outlive the call (and a `SKIP LOCKED` claim
/// would skip the job meanwhile).
async fn end<T>(tx: Tx, out: Result<T>) -> Result<T> {
    match out {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // The original error matters more than a failed rollback (the server rolls
            // back anyway when the connection goes).
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

impl PgStore {
    /// Connects and applies `migrations/postgres` (sqlx takes an advisory lock, so
    /// instances starting together migrate once).
    pub(crate) async fn connect(url: &str) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?;
        // One direct connection first: a pool that cannot connect reports only "timed
        // out", while this surfaces the cause (refused, authentication, no database).
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(PgStore { pool })
    }
}

impl RowExt for PgRow {
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_answer(&self, col: &str) -> Result<Option<String>> {
        // BYTEA (migration 0002): TEXT cannot hold U+0000.
        self.try_get::<Option<Vec<u8>>, _>(col)?
            .map(|b| {
                String::from_utf8(b)
                    .map_err(|e| crate::StoreError::Corrupt(format!("{col} is not UTF-8: {e}")))
            })
            .transpose()
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
        Ok(self.try_get(col)?)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(col)?)
    }
}

impl PgStore {
    async fn counts_many_impl(&self, job_ids: &[String]) -> Result<Vec<(String, ExecutionCounts)>> {
        let rows = sqlx::query(
            "SELECT job_id, status, COUNT(*) AS n FROM executions WHERE job_id = ANY($1) \
             GROUP BY job_id, status",
        )
        .bind(job_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_job: HashMap<String, ExecutionCounts> = HashMap::new();
        for row in rows {
            let status: String = row.try_get("status")?;
            let counts = by_job.entry(row.try_get("job_id")?).or_default();
            common::add_count(counts, &status, row.try_get("n")?)?;
        }
        // One entry per requested id, in request order, zeros for unknown ids.
        let out = job_ids
            .iter()
            .map(|id| (id.clone(), by_job.get(id).copied().unwrap_or_default()))
            .collect();
        Ok(out)
    }
}

/// Counts executions of one job per status, inside `tx` or on the pool.
pub(super) async fn counts_in<'e, E>(exec: E, job_id: &str) -> Result<ExecutionCounts>
where
    E: sqlx::Executor<'e, Database = Postgres>,
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

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_job(&self, job: &NewJob, executions: &[NewExecution]) -> Result<Inserted> {
        let mut tx = self.pool.begin().await?;
        let out = Self::insert_job_in(&mut tx, job, executions).await;
        end(tx, out).await
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
            " FROM jobs WHERE ($1::text IS NULL OR status = $1) \
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
        let q = common::execution_query(filter);
        let n = q.binds.len();
        let count_sql = format!("SELECT COUNT(*) AS n FROM executions{}", q.where_sql);
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        for b in &q.binds {
            count = count.bind(b);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT {} FROM executions{}{} LIMIT ${} OFFSET ${}",
            execution_cols!(),
            q.where_sql,
            q.order_sql,
            n + 1,
            n + 2
        );
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for b in &q.binds {
            page = page.bind(b);
        }
        let rows = page
            .bind(common::limit(filter.limit))
            .bind(i64::from(filter.offset))
            .fetch_all(&self.pool)
            .await?;
        Ok(Page {
            items: rows
                .iter()
                .map(common::execution_from_row)
                .collect::<Result<_>>()?,
            total: common::to_u64(total)?,
        })
    }

    async fn job_executions_after(
        &self,
        job_id: &str,
        after_seq: Option<u32>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>> {
        // -1 is below every seq, so the first page needs no second statement.
        let rows = sqlx::query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(job_id)
        .bind(after_seq.map_or(-1, i64::from))
        .bind(common::limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::execution_from_row).collect()
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
        let mut tx = self.pool.begin().await?;
        let out = Self::claim_job_in(&mut tx, owner, lease, now, running_here).await;
        end(tx, out).await
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
            " FROM executions WHERE job_id = $1 AND status = 'pending' AND id <> ALL($2) \
             ORDER BY seq LIMIT $3"
        ))
        .bind(job_id)
        .bind(exclude)
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
        let mut tx = self.pool.begin().await?;
        let out = Self::start_attempt_in(&mut tx, execution_id, owner, now).await;
        end(tx, out).await
    }

    async fn finish_attempt(&self, update: &AttemptUpdate, owner: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let out = Self::finish_attempt_in(&mut tx, update, owner).await;
        end(tx, out).await
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
        let mut tx = self.pool.begin().await?;
        let out = Self::requeue_unfinished_in(&mut tx, job_id, owner).await;
        end(tx, out).await
    }

    async fn cancel_unfinished(
        &self,
        job_id: &str,
        failure: &Failure,
        reason: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let out = Self::cancel_unfinished_in(&mut tx, job_id, failure, reason).await;
        end(tx, out).await
    }

    async fn request_cancel(
        &self,
        job_id: &str,
        failure: &Failure,
        now: DateTime<Utc>,
    ) -> Result<Option<CancelOutcome>> {
        let mut tx = self.pool.begin().await?;
        let out = Self::request_cancel_in(&mut tx, job_id, failure, now).await;
        end(tx, out).await
    }

    async fn finalize_job(&self, job_id: &str, now: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.pool.begin().await?;
        let out = scheduling::finalize_in(&mut tx, job_id, now).await;
        end(tx, out).await
    }

    async fn retry_failed(&self, job_id: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let out = Self::retry_failed_in(&mut tx, job_id).await;
        end(tx, out).await
    }

    async fn listen(&self) -> Result<Option<Box<dyn crate::SignalStream>>> {
        Ok(Some(Box::new(
            signals::PgSignals::connect(&self.pool).await?,
        )))
    }

    async fn notify_cancel_done(&self, job_id: &str) -> Result<()> {
        signals::notify(&self.pool, signals::CANCEL_DONE, job_id).await
    }

    async fn retry_execution(&self, execution_id: &str) -> Result<Option<crate::RetryOutcome>> {
        let mut tx = self.pool.begin().await?;
        let out = Self::retry_execution_in(&mut tx, execution_id).await;
        end(tx, out).await
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
