//! Read-only looks into a runner's PostgreSQL tables, for the moments no runner can
//! answer (right after one was killed, before another starts) and for what the API
//! does not list in one request (every attempt of a job). Only reads; the schema is
//! `migrations/postgres`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// One row of `execution_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub execution_id: String,
    #[sqlx(try_from = "i64")]
    pub attempt: u32,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub provider_id: Option<String>,
}

/// The parts of a `jobs` row a drill looks at.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub status: String,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// A small pool on the drill's database.
#[derive(Debug, Clone)]
pub struct DbProbe {
    pool: PgPool,
}

impl DbProbe {
    pub async fn connect(url: &str) -> anyhow::Result<DbProbe> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("cannot connect to the drill database")?;
        Ok(DbProbe { pool })
    }

    /// Executions of a job per status.
    pub async fn status_counts(&self, job_id: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM executions WHERE job_id = $1 GROUP BY status",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .context("counting executions by status")?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Every execution of a job: id → status.
    pub async fn statuses(&self, job_id: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, status FROM executions WHERE job_id = $1")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await
                .context("reading execution statuses")?;
        Ok(rows.into_iter().collect())
    }

    /// Every attempt of every execution of a job, in attempt order per execution.
    pub async fn attempts(&self, job_id: &str) -> anyhow::Result<Vec<AttemptRow>> {
        sqlx::query_as(
            "SELECT a.execution_id, a.attempt, a.outcome, a.error_code, a.provider_id \
             FROM execution_attempts a JOIN executions e ON e.id = a.execution_id \
             WHERE e.job_id = $1 ORDER BY a.execution_id, a.attempt",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .context("reading attempts")
    }

    /// Every job with its status and lease owner.
    pub async fn jobs(&self) -> anyhow::Result<Vec<JobRow>> {
        sqlx::query_as(
            "SELECT id, status, lease_owner, lease_expires_at FROM jobs ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading jobs")
    }

    /// One job's row.
    pub async fn job(&self, id: &str) -> anyhow::Result<JobRow> {
        self.jobs()
            .await?
            .into_iter()
            .find(|j| j.id == id)
            .with_context(|| format!("no job {id} in the store"))
    }

    /// How many attempts of each execution of a job ended with an answer (`success` or
    /// `empty`): more than one means the cell was completed twice.
    pub async fn answered_attempts(&self, job_id: &str) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for a in self.attempts(job_id).await? {
            if matches!(a.outcome.as_deref(), Some("success" | "empty")) {
                *out.entry(a.execution_id).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// Every receipt of a job as stored (execution id → the signed receipt; executions
    /// without one are left out).
    pub async fn receipts(
        &self,
        job_id: &str,
    ) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, receipt FROM executions WHERE job_id = $1 AND receipt IS NOT NULL",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .context("reading receipts")?;
        rows.into_iter()
            .map(|(id, receipt)| {
                let v = serde_json::from_str(&receipt)
                    .with_context(|| format!("receipt of {id} is not JSON"))?;
                Ok((id, v))
            })
            .collect()
    }

    /// The public key of each receipt of a job (execution id → key; executions without
    /// a receipt are left out). Each drill instance signs with a key of its own.
    pub async fn receipt_keys(&self, job_id: &str) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(self
            .receipts(job_id)
            .await?
            .into_iter()
            .filter_map(|(id, v)| Some((id, v["public_key"].as_str()?.to_string())))
            .collect())
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}
