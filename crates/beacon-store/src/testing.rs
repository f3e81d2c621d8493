//! Test support (crate feature `test-support`): a fresh store per test on each backend,
//! with guards that delete what the test created, and [`contract_test!`] to run one
//! test body against both backends. Used by this crate's contract suite and by the
//! runner's tests.
//!
//! PostgreSQL: `BEACON_TEST_POSTGRES_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets its own database
//! `beacon_test_<random hex>`, dropped when the guard goes. When the server is not
//! reachable the PostgreSQL variant is skipped with a loud line on stderr, unless
//! `BEACON_REQUIRE_POSTGRES=1` (CI), which makes it a failure.
//!
//! This module panics instead of returning errors: it only ever runs inside tests.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::Store;

/// The server the PostgreSQL tests use when `BEACON_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// 16 random hex digits. `RandomState` is seeded from the OS per thread and advanced per
/// call; time, pid and a counter make names unique even between concurrent processes.
pub fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// A temporary directory holding a SQLite database; removed (with its WAL files) on
/// drop.
#[derive(Debug)]
pub struct TempPath {
    dir: PathBuf,
}

impl TempPath {
    /// A new, empty directory under the system temp dir.
    pub fn new() -> TempPath {
        let dir = std::env::temp_dir().join(format!("beacon-store-test-{}", random_hex()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create temp dir {}: {e}", dir.display());
        }
        TempPath { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `sqlite://` URL of `store.db` in this directory.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.dir.join("store.db").display())
    }
}

impl Default for TempPath {
    fn default() -> Self {
        TempPath::new()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A migrated SQLite store in a fresh temp file. Keep the `TempPath` alive as long
/// as the store.
pub async fn sqlite_store() -> (Arc<dyn Store>, TempPath) {
    let tmp = TempPath::new();
    let url = tmp.sqlite_url();
    match crate::connect(&url).await {
        Ok(store) => (store, tmp),
        Err(e) => panic!("cannot open SQLite store {url}: {e}"),
    }
}

/// A per-test PostgreSQL database; dropped (`DROP DATABASE … WITH (FORCE)`) by
/// [`PgTestDb::cleanup`] or, failing that, on drop — also when the test panics.
#[derive(Debug)]
pub struct PgTestDb {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl PgTestDb {
    /// The database's URL (what `DATABASE_URL` would be).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, on the caller's runtime.
    pub async fn cleanup(mut self) {
        self.dropped = true;
        if let Err(e) = drop_database(&self.admin_url, &self.name).await {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop cannot await, and may run inside (or outside) a runtime: do the DROP on
        // a fresh thread with its own runtime and wait for it, so the database is gone
        // before the test process can exit.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(drop_database(&admin_url, &name)) {
                        eprintln!("warning: could not drop test database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: no runtime to drop test database {name}: {e}"),
            }
        });
        let _ = worker.join();
    }
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(admin_url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out after 5 s".to_string()),
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = admin_connection(admin_url).await?;
    // `name` is `beacon_test_` + hex digits (made here), never outside input.
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// `url` with its database (path) replaced by `db`, query kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A migrated PostgreSQL store in a fresh database, or `None` (after a loud SKIPPED
/// line) when the server is unreachable and `BEACON_REQUIRE_POSTGRES` is not `1`.
pub async fn postgres_store() -> Option<(Arc<dyn Store>, PgTestDb)> {
    let admin_url = std::env::var("BEACON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let mut conn = match admin_connection(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => {
            let shown = beacon_core::failure::redact_url(&admin_url);
            if std::env::var("BEACON_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL not reachable at {shown} ({e}) and BEACON_REQUIRE_POSTGRES=1");
            }
            // Straight to the process's stderr: libtest captures `eprintln!` of
            // passing tests, and a skip must not go unnoticed.
            let line = format!(
                "SKIPPED: PostgreSQL not reachable at {shown} ({e}); set \
                 BEACON_REQUIRE_POSTGRES=1 to make this a failure\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return None;
        }
    };
    // A test database needs no durability: without this, CREATE DATABASE waits for
    // the copied catalog to be flushed (~0.45 s here, vs ~0.09 s).
    if let Err(e) = sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await
    {
        panic!("cannot configure the admin connection: {e}");
    }
    let name = format!("beacon_test_{}", random_hex());
    // The name is made of a constant prefix and hex digits only.
    let create = format!("CREATE DATABASE \"{name}\"");
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
    {
        panic!("cannot create test database {name}: {e}");
    }
    // Commits in the test database do not wait for the WAL flush either: a test issues
    // hundreds of small transactions, and their durability does not matter. Semantics
    // (locks, isolation, constraints) are unchanged.
    let tune = format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off");
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(tune))
        .execute(&mut conn)
        .await
    {
        eprintln!("warning: cannot tune test database {name}: {e}");
    }
    let _ = conn.close().await;
    let db = PgTestDb {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
        dropped: false,
    };
    // From here on `db` drops the database even if connecting panics.
    match crate::connect(&db.url).await {
        Ok(store) => Some((store, db)),
        Err(e) => panic!("cannot open PostgreSQL store in {}: {e}", db.name),
    }
}

/// Runs `f` against a fresh SQLite store, then a fresh PostgreSQL store (when
/// reachable; see the module docs). For tests that cannot use [`contract_test!`].
pub async fn for_each_backend<F, Fut>(f: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, _tmp) = sqlite_store().await;
    f(store).await;
    if let Some((store, db)) = postgres_store().await {
        f(store).await;
        db.cleanup().await;
    }
}

/// Defines a module `$name` with two tests, `sqlite` and `postgres`, each running the
/// body on a fresh store of that backend (`store: Arc<dyn Store>`):
///
/// ```text
/// contract_test!(claims_are_exclusive, |store| {
///     assert!(store.claim_job("a", lease, now, &[]).await?.is_none());
/// });
/// ```
///
/// Filter with `cargo test sqlite` / `cargo test postgres`. The calling crate needs
/// `tokio` (with `macros` and `rt-multi-thread`).
#[macro_export]
macro_rules! contract_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: ::std::sync::Arc<dyn $crate::Store>) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _tmp) = $crate::testing::sqlite_store().await;
                body(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some((store, db)) = $crate::testing::postgres_store().await else {
                    return;
                };
                body(store).await;
                db.cleanup().await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/test?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }

    #[test]
    fn random_names_differ() {
        assert_ne!(random_hex(), random_hex());
    }
}
