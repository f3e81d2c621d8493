//! SQLite group writes of attempts: many executions' `start_attempt` or
//! `finish_attempt` in one write transaction of two statements, whatever the group's
//! size. The members travel as one JSON array read with `json_each`, so the SQL text
//! is fixed (one prepared statement) and a group of 200 costs two round trips to the
//! connection's worker thread instead of 600: in the orchestration benchmark those
//! per-row round trips, not SQLite's own work, were most of the runner's CPU per answer
//! and held the first wave of calls back behind its attempt starts
//! (docs/benchmarks.md).
//!
//! Each member keeps the single writes' fence and rules (`scheduling.rs`): a member
//! whose job this owner does not hold running, or whose execution is no longer in a
//! status the write may leave, comes back fenced (`None` / `false`) and nothing of its
//! is written. `BEGIN IMMEDIATE` holds the write lock from the fence to the commit.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use super::{SqliteStore, t};
use crate::common;
use crate::{AttemptUpdate, Result, StartedAttempt};

/// Executions of running jobs whose lease `$owner` holds (the fence of `owns`).
macro_rules! fenced {
    ($owner:literal) => {
        concat!(
            "job_id IN (SELECT id FROM jobs WHERE lease_owner = ",
            $owner,
            " AND status = 'running')"
        )
    };
}

/// Starts: `$1` the ids (a JSON array), `$2` now, `$3` the owner.
const START: &str = concat!(
    "UPDATE executions SET status = 'running', attempt_count = attempt_count + 1, \
     started_at = COALESCE(started_at, $2), next_attempt_at = NULL, updated_at = $2 \
     WHERE id IN (SELECT value FROM json_each($1)) AND status IN ('pending', 'retrying') \
     AND ",
    fenced!("$3"),
    " RETURNING id, attempt_count"
);

/// The started attempts' rows: `$1` `[[id, attempt], ...]`, `$2` now. The call key is
/// the interrupted previous attempt's, else a new one (`common::INSERT_ATTEMPT`).
const START_ROWS: &str = "INSERT INTO execution_attempts \
     (execution_id, attempt, started_at, call_key) \
     SELECT s.id, s.n, $2, COALESCE(\
     (SELECT COALESCE(p.call_key, p.execution_id || ':' || CAST(p.attempt AS TEXT)) \
     FROM execution_attempts p WHERE p.execution_id = s.id AND p.attempt = s.n - 1 \
     AND (p.outcome IS NULL OR p.outcome = 'interrupted')), \
     s.id || ':' || CAST(s.n AS TEXT)) \
     FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS n \
     FROM json_each($1)) s WHERE true \
     RETURNING execution_id, attempt, call_key";

/// Ends: `$1` the members (one JSON array each, in [`finish_member`]'s order), `$2` the
/// owner. Never from a terminal status.
const FINISH: &str = concat!(
    "UPDATE executions SET status = u.status, provider_id = u.provider_id, \
     response = u.response, response_sha256 = u.response_sha256, \
     classification = u.classification, output = u.output, failure = u.failure, \
     receipt = u.receipt, error_code = u.error_code, latency_ms = u.latency_ms, \
     completed_at = u.completed_at, next_attempt_at = u.next_attempt_at, \
     updated_at = u.finished_at FROM \
     (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status, \
     json_extract(value, '$[2]') AS provider_id, json_extract(value, '$[3]') AS response, \
     json_extract(value, '$[4]') AS response_sha256, \
     json_extract(value, '$[5]') AS classification, json_extract(value, '$[6]') AS output, \
     json_extract(value, '$[7]') AS failure, json_extract(value, '$[8]') AS receipt, \
     json_extract(value, '$[9]') AS error_code, json_extract(value, '$[10]') AS latency_ms, \
     json_extract(value, '$[11]') AS completed_at, \
     json_extract(value, '$[12]') AS next_attempt_at, \
     json_extract(value, '$[13]') AS finished_at FROM json_each($1)) AS u \
     WHERE executions.id = u.id \
     AND executions.status IN ('pending', 'running', 'retrying') AND executions.",
    fenced!("$2"),
    " RETURNING executions.id"
);

/// The ended attempts' rows of the members that were written (`$1`: one JSON array
/// each, in the order [`finish_member`] builds it): an upsert, as an attempt's end must never be lost
/// for want of its start. Separate from `FINISH`'s members, so the answers' text is
/// not read twice.
const FINISH_ROWS: &str = "INSERT INTO execution_attempts (execution_id, attempt, \
     started_at, finished_at, outcome, error_code, http_status, provider_id, latency_ms) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
     json_extract(value, '$[2]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
     json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), \
     json_extract(value, '$[7]') FROM json_each($1) WHERE true \
     ON CONFLICT (execution_id, attempt) DO UPDATE SET finished_at = excluded.finished_at, \
     outcome = excluded.outcome, error_code = excluded.error_code, \
     http_status = excluded.http_status, provider_id = excluded.provider_id, \
     latency_ms = excluded.latency_ms";

/// One finish member as the JSON array `FINISH` reads, and its attempt's row for
/// `FINISH_ROWS` (none for attempt 0): the single write's values.
fn finish_member(u: &AttemptUpdate) -> Result<(Value, Option<Value>)> {
    let row = common::finish_row(u)?;
    let finished_at = t(row.finished_at);
    let attempt_row = row.attempt.map(|attempt| {
        json!([
            u.execution_id,
            attempt,
            finished_at,
            u.attempt_outcome,
            row.attempt_error_code,
            row.http_status,
            row.provider_id,
            row.latency_ms,
        ])
    });
    let member = json!([
        u.execution_id,
        row.status,
        row.provider_id,
        row.response,
        row.response_sha256,
        row.classification,
        row.output,
        row.failure,
        row.receipt,
        row.error_code,
        row.latency_ms,
        row.completed_at.map(t),
        row.next_attempt_at.map(t),
        finished_at,
    ]);
    Ok((member, attempt_row))
}

impl SqliteStore {
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
        let now = t(now);
        let members = common::json_text(&ids)?;
        let mut tx = self.write_tx().await?;
        let written = async {
            let rows = sqlx::query(START)
                .bind(&members)
                .bind(now)
                .bind(owner)
                .fetch_all(&mut **tx)
                .await?;
            let mut started: Vec<Value> = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("id")?;
                started.push(json!([id, row.try_get::<i64, _>("attempt_count")?]));
            }
            if started.is_empty() {
                return Ok(HashMap::new());
            }
            let rows = sqlx::query(START_ROWS)
                .bind(common::json_text(&started)?)
                .bind(now)
                .fetch_all(&mut **tx)
                .await?;
            let mut out = HashMap::with_capacity(rows.len());
            for row in rows {
                out.insert(
                    row.try_get::<String, _>("execution_id")?,
                    StartedAttempt {
                        number: common::to_u32(row.try_get::<i64, _>("attempt")?)?,
                        call_key: row.try_get("call_key")?,
                    },
                );
            }
            Ok(out)
        }
        .await;
        let mut started = tx.end(written).await?;
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
        // Answers are stored byte for byte: the bundled SQLite's JSON functions keep an
        // escaped U+0000 inside a string (contract test
        // `a_group_stores_what_the_single_writes_store`).
        let (members, attempt_rows): (Vec<_>, Vec<_>) = updates
            .iter()
            .map(finish_member)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let members = common::json_text(&members)?;
        let mut tx = self.write_tx().await?;
        let written = async {
            let mut done = HashSet::with_capacity(updates.len());
            for row in sqlx::query(FINISH)
                .bind(&members)
                .bind(owner)
                .fetch_all(&mut **tx)
                .await?
            {
                done.insert(row.try_get::<String, _>("id")?);
            }
            let ended: Vec<&Value> = updates
                .iter()
                .zip(&attempt_rows)
                .filter(|(u, _)| done.contains(&u.execution_id))
                .filter_map(|(_, r)| r.as_ref())
                .collect();
            if !ended.is_empty() {
                sqlx::query(FINISH_ROWS)
                    .bind(common::json_text(&ended)?)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(done)
        }
        .await;
        let done = tx.end(written).await?;
        Ok(updates
            .iter()
            .map(|u| done.contains(&u.execution_id))
            .collect())
    }
}
