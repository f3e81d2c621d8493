//! Signals between runner instances over PostgreSQL `LISTEN`/`NOTIFY`: a committed
//! cancel reaches the instance that runs the job in milliseconds, and that instance
//! answers once its calls have stopped. The lease heartbeat stays the fallback for a
//! signal lost while a connection was down.

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgListener, PgPool};

use crate::{Result, Signal, SignalStream};

/// Channel of [`Signal::CancelRequested`]; the payload is the job id.
pub(super) const CANCEL_REQUESTED: &str = "beacon_cancel_requested";
/// Channel of [`Signal::CancelDone`]; the payload is the job id.
pub(super) const CANCEL_DONE: &str = "beacon_cancel_done";

/// Sends `payload` on `channel` (inside a transaction: when it commits).
pub(super) async fn notify<'e, E>(exec: E, channel: &str, payload: &str) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(exec)
        .await?;
    Ok(())
}

pub(super) struct PgSignals {
    listener: PgListener,
}

impl PgSignals {
    pub(super) async fn connect(pool: &PgPool) -> Result<PgSignals> {
        let mut listener = PgListener::connect_with(pool).await?;
        // The runner closes its pool last, at exit; a listener cut off by that close
        // would only report an error nobody reads.
        listener.ignore_pool_close_event(true);
        listener.listen_all([CANCEL_REQUESTED, CANCEL_DONE]).await?;
        Ok(PgSignals { listener })
    }
}

#[async_trait]
impl SignalStream for PgSignals {
    async fn recv(&mut self) -> Result<Option<Signal>> {
        loop {
            // `None`: the connection dropped; the listener reconnects (and listens
            // again) on the next call.
            let Some(n) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            let job = n.payload().to_string();
            match n.channel() {
                CANCEL_REQUESTED => return Ok(Some(Signal::CancelRequested(job))),
                CANCEL_DONE => return Ok(Some(Signal::CancelDone(job))),
                // Not ours (someone else LISTENs on the same connection): ignore.
                _ => continue,
            }
        }
    }
}
