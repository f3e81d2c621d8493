//! The PostgreSQL transparency log: the appender, serialised across runner instances
//! by a row lock on the one-row `transparency_head`, and the log's reads.

use std::collections::HashSet;

use beacon_core::transparency::{Hash, to_hex};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, Tx, end};
use crate::Result;
use crate::common::{ms, to_i64, to_u64};
use crate::transparency::{self as log, LogEntry, LogHead, LogLeaf, Queued, entry_cols};

fn queued_from_row(r: &PgRow) -> Result<Queued> {
    Ok(Queued {
        id: r.try_get("id")?,
        execution_id: r.try_get("execution_id")?,
        job_id: r.try_get("job_id")?,
        receipt: r.try_get("receipt")?,
    })
}

async fn append_in(tx: &mut Tx, limit: u32, now: DateTime<Utc>) -> Result<u64> {
    // One appender at a time, whichever instance: a second one waits here, then reads
    // the size the first one committed (FOR UPDATE returns the newest row version).
    let size: i64 =
        sqlx::query_scalar("SELECT size FROM transparency_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut **tx)
            .await?;
    // Read after the lock: under READ COMMITTED this statement gets a fresh snapshot,
    // so the receipts the previous holder of the lock appended (and removed from the
    // queue) are not seen again. Queue ids may commit out of order (identity values
    // are taken before commit); a late one is simply appended by the next round.
    let rows = sqlx::query(
        "SELECT id, execution_id, job_id, receipt FROM transparency_queue ORDER BY id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let queued = rows
        .iter()
        .map(queued_from_row)
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
    let leaves = log::leaves(&queued);
    let hashes: Vec<String> = leaves.iter().map(|l| to_hex(&l.leaf_hash())).collect();
    let logged: HashSet<String> =
        sqlx::query_scalar("SELECT leaf_hash FROM transparency_log WHERE leaf_hash = ANY($1)")
            .bind(&hashes)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
    let entries = log::number(queued, leaves, &logged, size);
    let appended = entries.len() as u64;
    if appended > 0 {
        let now = ms(now);
        // One array per column for UNNEST (binary arrays, no per-row parameters).
        let col = |f: fn(&log::NewEntry) -> &String| -> Vec<&str> {
            entries.iter().map(|e| f(e).as_str()).collect()
        };
        let sequences: Vec<i64> = entries.iter().map(|e| e.sequence).collect();
        let (executions, jobs) = (col(|e| &e.execution_id), col(|e| &e.job_id));
        let (digests, hashes) = (col(|e| &e.receipt_sha256), col(|e| &e.leaf_hash));
        let receipts = col(|e| &e.receipt);
        sqlx::query(
            "INSERT INTO transparency_log (sequence, execution_id, job_id, receipt_sha256, \
             leaf_hash, receipt, appended_at) \
             SELECT s, e, j, d, h, r, $7 FROM UNNEST($1::int8[], $2::text[], $3::text[], \
             $4::text[], $5::text[], $6::text[]) AS t(s, e, j, d, h, r)",
        )
        .bind(&sequences)
        .bind(&executions)
        .bind(&jobs)
        .bind(&digests)
        .bind(&hashes)
        .bind(&receipts)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE transparency_head SET size = $1, updated_at = $2 WHERE id = 1")
            .bind(size + to_i64(appended)?)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM transparency_queue WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    Ok(appended)
}

impl PgStore {
    pub(super) async fn append_receipts_impl(&self, limit: u32, now: DateTime<Utc>) -> Result<u64> {
        // Every instance calls this every poll interval: an empty queue must not take
        // the lock (nor a transaction).
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM transparency_queue)")
            .fetch_one(&self.pool)
            .await?;
        if !any {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let out = append_in(&mut tx, limit, now).await;
        end(tx, out).await
    }

    pub(super) async fn log_head_impl(&self) -> Result<LogHead> {
        let row = sqlx::query(
            "SELECT size, updated_at, (SELECT COUNT(*) FROM transparency_queue) AS queued \
             FROM transparency_head WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(LogHead {
            size: to_u64(row.try_get("size")?)?,
            updated_at: row.try_get("updated_at")?,
            queued: to_u64(row.try_get("queued")?)?,
        })
    }

    pub(super) async fn log_leaves_impl(&self, from: u64, limit: u32) -> Result<Vec<LogLeaf>> {
        let rows = sqlx::query(
            "SELECT sequence, execution_id, receipt_sha256, appended_at FROM transparency_log \
             WHERE sequence >= $1 ORDER BY sequence LIMIT $2",
        )
        .bind(to_i64(from)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(log::leaf_from_row).collect()
    }

    pub(super) async fn log_entry_for_execution_impl(
        &self,
        execution_id: &str,
    ) -> Result<Option<LogEntry>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            entry_cols!(),
            " FROM transparency_log WHERE execution_id = $1 ORDER BY sequence DESC LIMIT 1"
        ))
        .bind(execution_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(log::entry_from_row).transpose()
    }

    pub(super) async fn log_entry_by_leaf_hash_impl(
        &self,
        leaf_hash: &Hash,
    ) -> Result<Option<LogEntry>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            entry_cols!(),
            " FROM transparency_log WHERE leaf_hash = $1"
        ))
        .bind(to_hex(leaf_hash))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(log::entry_from_row).transpose()
    }
}
