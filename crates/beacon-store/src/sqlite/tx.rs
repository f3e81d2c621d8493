//! SQLite write transactions: this process's write turn, `BEGIN IMMEDIATE` on a clean
//! connection, and an explicit end (commit or rollback) before the turn passes on.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, SqlSafeStr, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

use super::{MAX_CONNECTIONS, SqliteStore, Tx};
use crate::{Result, StoreError};

/// A write transaction and the process's write turn, held until commit or drop.
/// Fields drop in order: a transaction abandoned mid-way (its future dropped) queues
/// its rollback before the turn passes on.
pub(super) struct WriteTx {
    tx: Tx,
    _turn: OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Commits when `out` is `Ok`, rolls back when it is an error — explicitly, so
    /// the write lock is free before the next writer's turn (a dropped transaction is
    /// rolled back later, by the connection's worker).
    pub(super) async fn end<T>(self, out: Result<T>) -> Result<T> {
        match out {
            Ok(v) => {
                self.tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.tx.rollback().await;
                Err(e)
            }
        }
    }
}

impl Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl SqliteStore {
    /// This process's turn to write, for single-statement writes outside `write_tx`.
    pub(super) async fn write_turn(&self) -> OwnedMutexGuard<()> {
        self.write_turn.clone().lock_owned().await
    }

    /// Begins a write transaction: this process's write turn, then SQLite's write
    /// lock (`BEGIN IMMEDIATE`; another process holding it is waited for by
    /// `busy_timeout`).
    pub(super) async fn write_tx(&self) -> Result<WriteTx> {
        let turn = self.write_turn().await;
        let conn = self.clean_connection().await?;
        let tx = Transaction::begin(conn, Some("BEGIN IMMEDIATE".into_sql_str())).await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// A pooled connection that sqlx does not count as inside a transaction. On a full
    /// disk or an I/O error SQLite may end the transaction by itself; the COMMIT or
    /// ROLLBACK that follows then fails, sqlx keeps counting the transaction as open,
    /// and every later BEGIN on that connection fails ("begin_with at non-zero
    /// transaction depth"): the pool would stay poisoned after the disk recovered.
    /// Such a connection is closed instead of reused; a new one is opened in its place.
    async fn clean_connection(&self) -> Result<PoolConnection<Sqlite>> {
        for _ in 0..=MAX_CONNECTIONS {
            let mut conn = self.pool.acquire().await?;
            if !conn.is_in_transaction() {
                return Ok(conn);
            }
            tracing::warn!("closing a SQLite connection left inside a failed transaction");
            conn.close_on_drop();
        }
        Err(StoreError::Database(sqlx::Error::BeginFailed))
    }
}
