//! The runner's database for one measurement: a fresh SQLite file in the scratch
//! directory, or a fresh PostgreSQL database `beacon_bench_<random>` created on the
//! server and dropped again when the value is dropped (errors included); plus the
//! server processes serving that database, for CPU accounting.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

/// Where the runner stores its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--backend`: one of them or both (SQLite first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends(pub &'static [Backend]);

impl FromStr for Backends {
    type Err = String;
    fn from_str(s: &str) -> Result<Backends, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backends(&[Backend::Sqlite])),
            "postgres" | "postgresql" | "pg" => Ok(Backends(&[Backend::Postgres])),
            "both" | "all" => Ok(Backends(&[Backend::Sqlite, Backend::Postgres])),
            other => Err(format!(
                "unknown backend {other:?} (sqlite, postgres or both)"
            )),
        }
    }
}

/// A fresh database for one runner.
pub struct Database {
    /// `DATABASE_URL` for the runner.
    url: String,
    /// PostgreSQL only: the server URL to administer from and the database's name.
    pg: Option<PgDatabase>,
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Database {
    /// SQLite: `sqlite://<dir>/bench.db` (the runner creates it). PostgreSQL: a new
    /// database on the server of `admin_url` (a URL of any existing database there).
    pub async fn create(backend: Backend, dir: &Path, admin_url: &str) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => Ok(Database {
                url: format!("sqlite://{}", dir.join("bench.db").display()),
                pg: None,
            }),
            Backend::Postgres => {
                let seed: [u8; 6] = super::spec::random_bytes()?;
                let name = format!("beacon_bench_{}", hex::encode(seed));
                let url = with_database(admin_url, &name)?;
                let mut conn = admin(admin_url).await?;
                // This session only: CREATE DATABASE need not wait for the copied
                // catalog to reach the disk. The runner's own commits keep the server's
                // setting (durable), which is what the benchmark measures.
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut conn)
                    .await?;
                // The name is a constant prefix and hex digits only.
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .with_context(|| format!("cannot create database {name}"))?;
                let _ = conn.close().await;
                Ok(Database {
                    url,
                    pg: Some(PgDatabase {
                        admin_url: admin_url.to_string(),
                        name,
                    }),
                })
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Leaves a PostgreSQL database in place when dropped; returns its URL.
    pub fn keep(&mut self) -> &str {
        self.pg = None;
        &self.url
    }

    /// PostgreSQL: the server processes connected to this database now (the runner's
    /// pool). Empty for SQLite, whose work happens inside the runner.
    pub async fn server_pids(&self) -> Vec<u32> {
        let Some(pg) = &self.pg else {
            return Vec::new();
        };
        let Ok(mut conn) = admin(&pg.admin_url).await else {
            return Vec::new();
        };
        let rows = sqlx::query("SELECT pid FROM pg_stat_activity WHERE datname = $1")
            .bind(&pg.name)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
        let _ = conn.close().await;
        rows.iter()
            .filter_map(|r| r.try_get::<i32, _>("pid").ok())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }
}

impl Drop for Database {
    /// Drops the PostgreSQL database (`WITH (FORCE)` ends connections a killed runner
    /// left behind). Runs on a thread of its own with its own event loop, so it works
    /// from inside the benchmark's single-threaded runtime and on every error path.
    fn drop(&mut self) {
        let Some(pg) = self.pg.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = admin(&pg.admin_url).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    pg.name
                )))
                .execute(&mut conn)
                .await
                .with_context(|| format!("cannot drop database {}", pg.name))?;
                let _ = conn.close().await;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("beacon-bench: {e:#}"),
            Err(_) => eprintln!("beacon-bench: dropping the benchmark database panicked"),
        }
    }
}

async fn admin(url: &str) -> anyhow::Result<PgConnection> {
    PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// `url` with its database (path) replaced by `name`; query parameters kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let mut parsed =
        reqwest::Url::parse(url).with_context(|| format!("not a URL: {}", redact(url)))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        bail!("not a postgres:// URL: {}", redact(url));
    }
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_keeps_the_rest() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "beacon_bench_ab")
                .unwrap_or_default(),
            "postgres://postgres@127.0.0.1:5432/beacon_bench_ab"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x").unwrap_or_default(),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert!(with_database("sqlite://x.db", "x").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn parses_backends() {
        assert_eq!("both".parse::<Backends>().map(|b| b.0.len()), Ok(2));
        assert_eq!(
            "PG".parse::<Backends>().map(|b| b.0.to_vec()),
            Ok(vec![Backend::Postgres])
        );
        assert!("mysql".parse::<Backends>().is_err());
    }
}
