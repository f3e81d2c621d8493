//! SQLite scheduling writes: claiming and leasing jobs, fenced attempt writes, cancels,
//! finalize and retry-failed. Each is one `BEGIN IMMEDIATE` transaction, so a fence
//! checked at its start holds until its commit (no other writer can run in between).

use std::time::Duration;

use beacon_core::Failure;
use beacon_core::status::RegionQuorum;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{SqliteStore, Tx, counts_in, t};
use crate::common::{self, Verdict, job_cols, json_text, lease_until};
use crate::{AttemptUpdate, CancelOutcome, JobRecord, Result, StartedAttempt};

pub(super) async fn read_job(tx: &mut Tx, job_id: &str) -> Result<Option<JobRecord>> {
    let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(common::job_from_row).transpose()
}

/// The fence of attempt writes: true iff `owner` holds the lease of the execution's
/// running job.
async fn owns(tx: &mut Tx, execution_id: &str, owner: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT j.id FROM jobs j JOIN executions e ON e.job_id = j.id \
         WHERE e.id = $1 AND j.lease_owner = $2 AND j.status = 'running'",
    )
    .bind(execution_id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Ends the open attempt rows of the job's in-flight executions with `outcome`.
async fn close_open_attempts(tx: &mut Tx, job_id: &str, outcome: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE execution_attempts SET finished_at = $2, outcome = $3 \
         WHERE finished_at IS NULL AND execution_id IN \
         (SELECT id FROM executions WHERE job_id = $1 AND status IN ('running', 'retrying'))",
    )
    .bind(job_id)
    .bind(now)
    .bind(outcome)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sends the job's in-flight executions back to `pending` (their runner is gone).
async fn requeue_in(tx: &mut Tx, job_id: &str, now: i64) -> Result<u64> {
    close_open_attempts(tx, job_id, "interrupted", now).await?;
    let n = sqlx::query(
        "UPDATE executions SET status = 'pending', next_attempt_at = NULL, updated_at = $2 \
         WHERE job_id = $1 AND status IN ('running', 'retrying')",
    )
    .bind(job_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n)
}

/// Cancels every unfinished execution of the job with `failure`.
async fn cancel_in(tx: &mut Tx, job_id: &str, failure: &Failure, now: i64) -> Result<u64> {
    close_open_attempts(tx, job_id, "cancelled", now).await?;
    let n = sqlx::query(
        "UPDATE executions SET status = 'cancelled', failure = $2, error_code = $3, \
         completed_at = $4, next_attempt_at = NULL, updated_at = $4 \
         WHERE job_id = $1 AND status IN ('pending', 'running', 'retrying')",
    )
    .bind(job_id)
    .bind(json_text(failure)?)
    .bind(failure.code.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n)
}

async fn write_verdict(tx: &mut Tx, job_id: &str, v: &Verdict, now: i64) -> Result<JobRecord> {
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = $2, finished_at = $3, failure_reason = $4, failure_message = $5, \
         lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 RETURNING ",
        job_cols!()
    ))
    .bind(job_id)
    .bind(v.status.as_str())
    .bind(now)
    .bind(&v.reason)
    .bind(&v.message)
    .fetch_one(&mut **tx)
    .await?;
    common::job_from_row(&row)
}

/// Finalize inside `tx` (which holds the write lock): if the job is not terminal and
/// every execution is, stores the verdict.
pub(super) async fn finalize_in(
    tx: &mut Tx,
    job_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<JobRecord>> {
    let Some(job) = read_job(tx, job_id).await? else {
        return Ok(None);
    };
    if job.status.is_terminal() {
        return Ok(None);
    }
    // Cheap index probe first: the runner may ask after every execution.
    let unfinished: i64 = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM executions WHERE job_id = $1 \
         AND status IN ('pending', 'running', 'retrying')) AS u",
    )
    .bind(job_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("u")?;
    if unfinished != 0 {
        return Ok(None);
    }
    let counts = counts_in(&mut **tx, job_id).await?;
    let quorum = RegionQuorum {
        min: job.min_regions,
        answered: if job.min_regions == 0 {
            0
        } else {
            answered_regions(&mut **tx, job_id).await?
        },
    };
    let Some(v) = common::verdict(
        &counts,
        job.min_success_rate,
        quorum,
        job.cancel_requested_at.is_some(),
        job.failure_reason.as_deref(),
    ) else {
        return Ok(None);
    };
    write_verdict(tx, job_id, &v, t(now)).await.map(Some)
}

impl SqliteStore {
    pub(super) async fn claim_job_in(
        tx: &mut Tx,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        running_here: &[String],
    ) -> Result<Option<JobRecord>> {
        // A released lease (NULL) is claimable at once; an expired one too.
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
             started_at = COALESCE(started_at, $3) \
             WHERE id = (SELECT id FROM jobs \
               WHERE (status = 'queued' OR (status = 'running' \
                      AND (lease_expires_at IS NULL OR lease_expires_at < $3))) \
                 AND cancel_requested_at IS NULL \
                 AND id NOT IN (SELECT value FROM json_each($4)) \
               ORDER BY created_at, id LIMIT 1) \
             RETURNING ",
            job_cols!()
        ))
        .bind(owner)
        .bind(t(lease_until(now, lease)))
        .bind(t(now))
        .bind(json_text(&running_here)?)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = common::job_from_row(&row)?;
        requeue_in(tx, &job.id, t(now)).await?;
        Ok(Some(job))
    }

    pub(super) async fn renew_lease_impl(
        &self,
        job_id: &str,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let n = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 \
             AND status NOT IN ('completed', 'failed', 'cancelled')",
        )
        .bind(job_id)
        .bind(owner)
        .bind(t(lease_until(now, lease)))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub(super) async fn release_lease_impl(&self, job_id: &str, owner: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(job_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn start_attempt_in(
        tx: &mut Tx,
        execution_id: &str,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StartedAttempt>> {
        let now = t(now);
        if !owns(tx, execution_id, owner).await? {
            return Ok(None);
        }
        let row = sqlx::query(
            "UPDATE executions SET status = 'running', attempt_count = attempt_count + 1, \
             started_at = COALESCE(started_at, $2), next_attempt_at = NULL, updated_at = $2 \
             WHERE id = $1 AND status IN ('pending', 'retrying') RETURNING attempt_count",
        )
        .bind(execution_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempt: i64 = row.try_get("attempt_count")?;
        let key = sqlx::query(common::INSERT_ATTEMPT)
            .bind(execution_id)
            .bind(attempt)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
        Ok(Some(StartedAttempt {
            number: common::to_u32(attempt)?,
            call_key: key.try_get("call_key")?,
        }))
    }

    pub(super) async fn finish_attempt_in(
        tx: &mut Tx,
        u: &AttemptUpdate,
        owner: &str,
    ) -> Result<bool> {
        let row = common::finish_row(u)?;
        if !owns(tx, &u.execution_id, owner).await? {
            return Ok(false);
        }
        // Never from a terminal status: a cancel that landed first wins. From pending
        // too: an execution may end without an attempt (attempt 0, e.g. its question is
        // missing from the plan).
        let n = sqlx::query(
            "UPDATE executions SET status = $2, provider_id = $3, response = $4, \
             response_sha256 = $5, classification = $6, output = $7, failure = $8, receipt = $9, \
             error_code = $10, latency_ms = $11, completed_at = $12, next_attempt_at = $13, \
             updated_at = $14 WHERE id = $1 AND status IN ('pending', 'running', 'retrying')",
        )
        .bind(&u.execution_id)
        .bind(row.status)
        .bind(&row.provider_id)
        .bind(&row.response)
        .bind(&row.response_sha256)
        .bind(row.classification)
        .bind(&row.output)
        .bind(&row.failure)
        .bind(&row.receipt)
        .bind(&row.error_code)
        .bind(row.latency_ms)
        .bind(row.completed_at.map(t))
        .bind(row.next_attempt_at.map(t))
        .bind(t(row.finished_at))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if let Some(attempt) = row.attempt {
            // Upsert: the row normally exists (start_attempt), but an attempt's end
            // must never be lost for want of its start.
            sqlx::query(
                "INSERT INTO execution_attempts (execution_id, attempt, started_at, finished_at, \
                 outcome, error_code, http_status, provider_id, latency_ms) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (execution_id, attempt) DO UPDATE SET finished_at = excluded.finished_at, \
                 outcome = excluded.outcome, error_code = excluded.error_code, \
                 http_status = excluded.http_status, provider_id = excluded.provider_id, \
                 latency_ms = excluded.latency_ms",
            )
            .bind(&u.execution_id)
            .bind(attempt)
            .bind(t(row.finished_at))
            .bind(&u.attempt_outcome)
            .bind(&row.attempt_error_code)
            .bind(row.http_status)
            .bind(&row.provider_id)
            .bind(row.latency_ms)
            .execute(&mut **tx)
            .await?;
        }
        Ok(true)
    }

    pub(super) async fn requeue_unfinished_in(
        tx: &mut Tx,
        job_id: &str,
        owner: &str,
    ) -> Result<u64> {
        let now = t(Utc::now());
        let owned = sqlx::query("SELECT id FROM jobs WHERE id = $1 AND lease_owner = $2")
            .bind(job_id)
            .bind(owner)
            .fetch_optional(&mut **tx)
            .await?;
        if owned.is_none() {
            return Ok(0);
        }
        let n = requeue_in(tx, job_id, now).await?;
        Ok(n)
    }

    pub(super) async fn cancel_unfinished_in(
        tx: &mut Tx,
        job_id: &str,
        failure: &Failure,
        reason: Option<&str>,
    ) -> Result<u64> {
        let now = Utc::now();
        let Some(job) = read_job(tx, job_id).await? else {
            return Ok(0);
        };
        if job.status.is_terminal() {
            return Ok(0);
        }
        let n = cancel_in(tx, job_id, failure, t(now)).await?;
        if let Some(reason) = reason {
            // The first early-stop reason sticks.
            sqlx::query(
                "UPDATE jobs SET failure_reason = COALESCE(failure_reason, $2) WHERE id = $1",
            )
            .bind(job_id)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
        }
        finalize_in(tx, job_id, now).await?;
        Ok(n)
    }

    pub(super) async fn request_cancel_in(
        tx: &mut Tx,
        job_id: &str,
        failure: &Failure,
        now: DateTime<Utc>,
    ) -> Result<Option<CancelOutcome>> {
        let Some(job) = read_job(tx, job_id).await? else {
            return Ok(None);
        };
        if job.status.is_terminal() {
            return Ok(Some(CancelOutcome {
                previous_status: job.status,
                new_status: job.status,
                executions_cancelled: 0,
                cancelled_at: job.cancel_requested_at.unwrap_or(common::ms(now)),
            }));
        }
        sqlx::query(
            "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, $2) WHERE id = $1",
        )
        .bind(job_id)
        .bind(t(now))
        .execute(&mut **tx)
        .await?;
        let n = cancel_in(tx, job_id, failure, t(now)).await?;
        let done = match finalize_in(tx, job_id, now).await? {
            Some(done) => done,
            None => write_verdict(tx, job_id, &common::empty_job_cancel_verdict(), t(now)).await?,
        };
        Ok(Some(CancelOutcome {
            previous_status: job.status,
            new_status: done.status,
            executions_cancelled: n,
            cancelled_at: done.cancel_requested_at.unwrap_or(common::ms(now)),
        }))
    }
}

/// Regions of the job with at least one completed execution (its region quorum).
async fn answered_regions<'e, E>(exec: E, job_id: &str) -> Result<u32>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let n: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT region) AS n FROM executions \
         WHERE job_id = $1 AND status = 'completed'",
    )
    .bind(job_id)
    .fetch_one(exec)
    .await?
    .try_get("n")?;
    common::to_u32(n)
}
