//! How the scheduler writes through a database that can fail: a transient error (the
//! database is down, restarting, out of disk, busy) is retried until it succeeds, so an
//! answer that was paid for is held in memory and stored once the database is back; a
//! refusal of the data itself is returned to the caller, who records a failure instead
//! of buying the answer again. [`WriteHealth`] remembers whether writes are failing
//! right now, for `/api/v1/health` (a SQLite file that cannot grow still answers
//! `SELECT 1`).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use beacon_store::StoreError;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// First pause after a failed write; doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether the scheduler's writes succeed right now.
#[derive(Default)]
pub struct WriteHealth {
    failing: Mutex<Option<WriteTrouble>>,
}

/// Writes have been failing since `since`; the last error.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteTrouble {
    pub since: DateTime<Utc>,
    pub error: String,
    pub failures: u64,
}

impl WriteHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<WriteTrouble>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn failed(&self, e: &StoreError) {
        let mut g = self.lock();
        match g.as_mut() {
            Some(t) => {
                t.error = e.to_string();
                t.failures += 1;
            }
            None => {
                *g = Some(WriteTrouble {
                    since: Utc::now(),
                    error: e.to_string(),
                    failures: 1,
                })
            }
        }
    }

    /// A write went through: the trouble (if any) is over.
    pub fn succeeded(&self) {
        if let Some(t) = self.lock().take() {
            tracing::info!(since = %t.since, failures = t.failures, "database writes succeed again");
        }
    }

    /// `Some` while the last write failed.
    pub fn trouble(&self) -> Option<WriteTrouble> {
        self.lock().clone()
    }
}

/// What became of a retried write.
pub enum Written<T> {
    Done(T),
    /// The database refused the data (not an outage): retrying cannot help.
    Refused(StoreError),
    /// `stop` was cancelled while the database was unreachable; nothing was written.
    Abandoned,
}

/// Runs `write` until it succeeds, is refused, or `stop` is cancelled while waiting
/// between tries. `what` names the write in the log.
pub async fn retrying<T, F, Fut>(
    health: &WriteHealth,
    stop: &CancellationToken,
    what: &str,
    mut write: F,
) -> Written<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = beacon_store::Result<T>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        match write().await {
            Ok(v) => {
                health.succeeded();
                if tries > 0 {
                    tracing::info!(
                        what,
                        tries,
                        "write went through after the database came back"
                    );
                }
                return Written::Done(v);
            }
            Err(e) if e.is_transient() => {
                health.failed(&e);
                tries += 1;
                // Once, then every 20th try: an outage is one event, not a log flood.
                if tries == 1 || tries % 20 == 0 {
                    tracing::warn!(what, tries, error = %e, "database write failed; holding it and trying again");
                }
                tokio::select! {
                    _ = stop.cancelled() => return Written::Abandoned,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => {
                tracing::error!(what, error = %e, "the database refused a write");
                return Written::Refused(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_refusals_are_not() {
        let health = WriteHealth::default();
        let stop = CancellationToken::new();
        let mut calls = 0;
        let out = retrying(&health, &stop, "test", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(StoreError::Database(sqlx::Error::PoolTimedOut))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(out, Written::Done(3)));
        assert!(health.trouble().is_none());

        let out = retrying(&health, &stop, "test", || async {
            Err::<(), _>(StoreError::Corrupt("no".into()))
        })
        .await;
        assert!(matches!(out, Written::Refused(_)));

        stop.cancel();
        let out = retrying(&health, &stop, "test", || async {
            Err::<(), _>(StoreError::Database(sqlx::Error::PoolTimedOut))
        })
        .await;
        assert!(matches!(out, Written::Abandoned));
        assert_eq!(health.trouble().map(|t| t.failures), Some(1));
    }
}
