//! PostgreSQL group writes of attempts: many executions' `start_attempt` or
//! `finish_attempt` in one statement each (arrays bound as parameters, the fence, the
//! execution update and the attempt rows as one data-modifying `WITH`), so a batch
//! costs one round trip and one commit however many executions it holds.
//!
//! The fence is the single writes' (`scheduling.rs`): the job rows are taken
//! `FOR SHARE` while the executions are written, in job id order, so a claim by
//! another instance waits for the batch and then sees it; executions whose job this
//! owner does not hold, or that are no longer in a status the write may leave, come
//! back fenced (`None` / `false`) and nothing of theirs is written.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use crate::common::{self, ms};
use crate::{AttemptUpdate, Result, StartedAttempt};

/// The executions of `$1` whose job `$2` holds; shared lock on those job rows.
///
/// The members are looked up by primary key first (`MATERIALIZED`), then joined to
/// their jobs. Left to itself, a planner without fresh statistics (a new job, or
/// autovacuum off) ANDs the primary key with a bitmap of *every* entry of the job in
/// `executions_job_seq`: 2 ms per group on a 9,000-execution job, growing with the
/// job and its dead row versions, where the lookup by key takes 0.1 ms.
macro_rules! owned {
    () => {
        "members AS MATERIALIZED (SELECT id, job_id FROM executions WHERE id = ANY($1)), \
         owned AS (SELECT m.id FROM members m JOIN jobs j ON j.id = m.job_id \
         WHERE j.lease_owner = $2 AND j.status = 'running' \
         ORDER BY j.id FOR SHARE OF j)"
    };
}

impl PgStore {
    pub(super) async fn start_attempts_impl(
        &self,
        ids: &[String],
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<StartedAttempt>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        common::distinct(ids.iter().map(String::as_str))?;
        // The call key: the interrupted previous attempt's (its answer may be waiting at
        // the router), else a new one (`common::INSERT_ATTEMPT`, row by row).
        let sql = concat!(
            "WITH ",
            owned!(),
            ", started AS (UPDATE executions SET status = 'running', \
             attempt_count = attempt_count + 1, started_at = COALESCE(started_at, $3), \
             next_attempt_at = NULL, updated_at = $3 \
             WHERE id IN (SELECT id FROM owned) AND status IN ('pending', 'retrying') \
             RETURNING id, attempt_count) \
             INSERT INTO execution_attempts (execution_id, attempt, started_at, call_key) \
             SELECT s.id, s.attempt_count, $3, COALESCE(\
             (SELECT COALESCE(p.call_key, p.execution_id || ':' || CAST(p.attempt AS TEXT)) \
             FROM execution_attempts p WHERE p.execution_id = s.id \
             AND p.attempt = s.attempt_count - 1 \
             AND (p.outcome IS NULL OR p.outcome = 'interrupted')), \
             s.id || ':' || CAST(s.attempt_count AS TEXT)) FROM started s \
             RETURNING execution_id, attempt, call_key"
        );
        let rows = sqlx::query(sql)
            .bind(ids)
            .bind(owner)
            .bind(ms(now))
            .fetch_all(&self.pool)
            .await?;
        let mut started = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("execution_id")?;
            let number = common::to_u32(row.try_get::<i64, _>("attempt")?)?;
            let call_key: String = row.try_get("call_key")?;
            started.insert(id, StartedAttempt { number, call_key });
        }
        Ok(ids.iter().map(|id| started.remove(id)).collect())
    }

    pub(super) async fn finish_attempts_impl(
        &self,
        updates: &[AttemptUpdate],
        owner: &str,
    ) -> Result<Vec<bool>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        common::distinct(updates.iter().map(|u| u.execution_id.as_str()))?;
        let mut c = Columns::default();
        for u in updates {
            c.push(u)?;
        }
        // The same values and rules as `finish_attempt_in`, as columns of one `unnest`.
        let sql = concat!(
            "WITH u AS (SELECT * FROM unnest($1::text[], $3::text[], $4::text[], $5::bytea[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::bigint[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], \
             $16::bigint[], $17::text[], $18::text[], $19::bigint[]) AS u(id, status, \
             provider_id, response, response_sha256, classification, output, failure, \
             receipt, error_code, latency_ms, completed_at, next_attempt_at, finished_at, \
             attempt, outcome, attempt_error_code, http_status)), ",
            owned!(),
            ", done AS (UPDATE executions e SET status = u.status, provider_id = u.provider_id, \
             response = u.response, response_sha256 = u.response_sha256, \
             classification = u.classification, output = u.output, failure = u.failure, \
             receipt = u.receipt, error_code = u.error_code, latency_ms = u.latency_ms, \
             completed_at = u.completed_at, next_attempt_at = u.next_attempt_at, \
             updated_at = u.finished_at FROM u WHERE e.id = u.id \
             AND e.id IN (SELECT id FROM owned) \
             AND e.status IN ('pending', 'running', 'retrying') RETURNING e.id), \
             attempts AS (INSERT INTO execution_attempts (execution_id, attempt, started_at, \
             finished_at, outcome, error_code, http_status, provider_id, latency_ms) \
             SELECT u.id, u.attempt, u.finished_at, u.finished_at, u.outcome, \
             u.attempt_error_code, u.http_status, u.provider_id, u.latency_ms \
             FROM u JOIN done ON done.id = u.id WHERE u.attempt IS NOT NULL \
             ON CONFLICT (execution_id, attempt) DO UPDATE SET \
             finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, \
             error_code = EXCLUDED.error_code, http_status = EXCLUDED.http_status, \
             provider_id = EXCLUDED.provider_id, latency_ms = EXCLUDED.latency_ms) \
             SELECT id FROM done"
        );
        let rows = sqlx::query(sql)
            .bind(&c.id)
            .bind(owner)
            .bind(&c.status)
            .bind(&c.provider_id)
            .bind(&c.response)
            .bind(&c.response_sha256)
            .bind(&c.classification)
            .bind(&c.output)
            .bind(&c.failure)
            .bind(&c.receipt)
            .bind(&c.error_code)
            .bind(&c.latency_ms)
            .bind(&c.completed_at)
            .bind(&c.next_attempt_at)
            .bind(&c.finished_at)
            .bind(&c.attempt)
            .bind(&c.outcome)
            .bind(&c.attempt_error_code)
            .bind(&c.http_status)
            .fetch_all(&self.pool)
            .await?;
        let mut done = HashSet::with_capacity(rows.len());
        for row in rows {
            done.insert(row.try_get::<String, _>("id")?);
        }
        Ok(updates
            .iter()
            .map(|u| done.contains(&u.execution_id))
            .collect())
    }
}

/// The finish rows of a batch, column by column (PostgreSQL arrays).
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    status: Vec<&'static str>,
    provider_id: Vec<Option<String>>,
    response: Vec<Option<Vec<u8>>>,
    response_sha256: Vec<Option<String>>,
    classification: Vec<Option<&'static str>>,
    output: Vec<Option<String>>,
    failure: Vec<Option<String>>,
    receipt: Vec<Option<String>>,
    error_code: Vec<Option<String>>,
    latency_ms: Vec<Option<i64>>,
    completed_at: Vec<Option<DateTime<Utc>>>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<DateTime<Utc>>,
    attempt: Vec<Option<i64>>,
    outcome: Vec<String>,
    attempt_error_code: Vec<Option<String>>,
    http_status: Vec<Option<i64>>,
}

impl Columns {
    fn push(&mut self, u: &AttemptUpdate) -> Result<()> {
        let row = common::finish_row(u)?;
        self.id.push(u.execution_id.clone());
        self.status.push(row.status);
        self.provider_id.push(row.provider_id);
        self.response.push(row.response.map(String::into_bytes));
        self.response_sha256.push(row.response_sha256);
        self.classification.push(row.classification);
        self.output.push(row.output);
        self.failure.push(row.failure);
        self.receipt.push(row.receipt);
        self.error_code.push(row.error_code);
        self.latency_ms.push(row.latency_ms);
        self.completed_at.push(row.completed_at);
        self.next_attempt_at.push(row.next_attempt_at);
        self.finished_at.push(row.finished_at);
        self.attempt.push(row.attempt);
        self.outcome.push(u.attempt_outcome.clone());
        self.attempt_error_code.push(row.attempt_error_code);
        self.http_status.push(row.http_status);
        Ok(())
    }
}
