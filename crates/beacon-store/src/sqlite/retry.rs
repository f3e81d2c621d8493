//! SQLite retries a user asks for: every failed execution of a finished job
//! (`retry_failed`), or one execution (`retry_execution`, the portal's retry button).
//! The outcome of the failed round goes; attempt counts and attempt rows stay.

use beacon_core::status::JobStatus;
use chrono::Utc;

use super::scheduling::read_job as lock_job;
use super::{SqliteStore, Tx, t};
use crate::common::{self, RETRY_CLEARS, execution_cols};
use crate::{Result, RetryOutcome};

impl SqliteStore {
    pub(super) async fn retry_failed_in(tx: &mut Tx, job_id: &str) -> Result<u64> {
        let Some(job) = lock_job(tx, job_id).await? else {
            return Ok(0);
        };
        if !matches!(job.status, JobStatus::Completed | JobStatus::Failed) {
            return Ok(0);
        }
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE executions SET status = 'pending', {RETRY_CLEARS}, updated_at = $2 \
             WHERE job_id = $1 AND status IN ('failed', 'timeout')"
        )))
        .bind(job_id)
        .bind(t(Utc::now()))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n > 0 {
            requeue_job(tx, job_id).await?;
        }
        Ok(n)
    }

    pub(super) async fn retry_execution_in(
        tx: &mut Tx,
        execution_id: &str,
    ) -> Result<Option<RetryOutcome>> {
        // The write transaction (BEGIN IMMEDIATE) holds the database: no lock to take.
        let job_id: Option<String> =
            sqlx::query_scalar("SELECT job_id FROM executions WHERE id = $1")
                .bind(execution_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(job) = (match job_id {
            Some(id) => lock_job(tx, &id).await?,
            None => None,
        }) else {
            return Ok(None);
        };
        let row = sqlx::query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE id = $1"
        ))
        .bind(execution_id)
        .fetch_one(&mut **tx)
        .await?;
        let exec = common::execution_from_row(&row)?;
        let mut out = RetryOutcome {
            previous: exec.status,
            requeued: false,
            job_status: job.status,
            attempts: exec.attempt_count,
        };
        if !common::retryable(&exec, &job) {
            return Ok(Some(out));
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE executions SET status = 'pending', {RETRY_CLEARS}, updated_at = $2 WHERE id = $1"
        )))
        .bind(execution_id)
        .bind(t(Utc::now()))
        .execute(&mut **tx)
        .await?;
        out.requeued = true;
        if matches!(job.status, JobStatus::Completed | JobStatus::Failed) {
            requeue_job(tx, &job.id).await?;
            out.job_status = JobStatus::Queued;
        }
        Ok(Some(out))
    }
}

/// A finished job goes back to `queued` (its verdict cleared) so an instance claims it.
async fn requeue_job(tx: &mut Tx, job_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'queued', finished_at = NULL, failure_reason = NULL, \
         failure_message = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
