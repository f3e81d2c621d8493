//! SQLite group writes of attempts: many executions' `start_attempt` or
//! `finish_attempt` in one write transaction. SQLite has one writer and its cost is the
//! commit (a sync of the WAL), so a batch of attempt writes costs about what one did;
//! each write inside keeps its own fence (`scheduling.rs`).

use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::common;
use crate::{AttemptUpdate, Result, StartedAttempt};

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
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match Self::start_attempt_in(&mut tx, id, owner, now).await {
                Ok(started) => out.push(started),
                Err(e) => return tx.end(Err(e)).await,
            }
        }
        tx.end(Ok(out)).await
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
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(updates.len());
        for u in updates {
            match Self::finish_attempt_in(&mut tx, u, owner).await {
                Ok(done) => out.push(done),
                Err(e) => return tx.end(Err(e)).await,
            }
        }
        tx.end(Ok(out)).await
    }
}
