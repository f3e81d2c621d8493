//! The SQLite transparency log: the appender, inside `BEGIN IMMEDIATE` (one writer at
//! a time, so the numbering cannot race), and the log's reads.

use std::collections::HashSet;

use beacon_core::transparency::{Hash, to_hex};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, Tx, from_ms, t};
use crate::Result;
use crate::common::{json_text, to_i64, to_u64};
use crate::transparency::{self as log, LogEntry, LogHead, LogLeaf, Queued, entry_cols};

fn queued_from_row(r: &SqliteRow) -> Result<Queued> {
    Ok(Queued {
        id: r.try_get("id")?,
        execution_id: r.try_get("execution_id")?,
        job_id: r.try_get("job_id")?,
        receipt: r.try_get("receipt")?,
    })
}

async fn append_in(tx: &mut Tx, limit: u32, now: DateTime<Utc>) -> Result<u64> {
    let size: i64 = sqlx::query_scalar("SELECT size FROM transparency_head WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
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
    // One JSON parameter per statement (see insert.rs: per-value binding is slow).
    let logged: HashSet<String> = sqlx::query_scalar(
        "SELECT leaf_hash FROM transparency_log \
         WHERE leaf_hash IN (SELECT value FROM json_each($1))",
    )
    .bind(json_text(&hashes)?)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let entries = log::number(queued, leaves, &logged, size);
    let appended = entries.len() as u64;
    if appended > 0 {
        let rows: Vec<(i64, &str, &str, &str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.sequence,
                    e.execution_id.as_str(),
                    e.job_id.as_str(),
                    e.receipt_sha256.as_str(),
                    e.leaf_hash.as_str(),
                    e.receipt.as_str(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO transparency_log (sequence, execution_id, job_id, receipt_sha256, \
             leaf_hash, receipt, appended_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
             value ->> 5, $2 FROM json_each($1)",
        )
        .bind(json_text(&rows)?)
        .bind(t(now))
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE transparency_head SET size = $1, updated_at = $2 WHERE id = 1")
            .bind(size + to_i64(appended)?)
            .bind(t(now))
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM transparency_queue WHERE id IN (SELECT value FROM json_each($1))")
        .bind(json_text(&ids)?)
        .execute(&mut **tx)
        .await?;
    Ok(appended)
}

impl SqliteStore {
    pub(super) async fn append_receipts_impl(&self, limit: u32, now: DateTime<Utc>) -> Result<u64> {
        // Probe without the write turn: the runner calls this every poll interval and
        // must not queue behind (or delay) the scheduler's writes for nothing.
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM transparency_queue)")
            .fetch_one(&self.pool)
            .await?;
        if !any {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let out = append_in(&mut tx, limit, now).await;
        tx.end(out).await
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
            updated_at: row
                .try_get::<Option<i64>, _>("updated_at")?
                .map(from_ms)
                .transpose()?,
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
