//! `PrivateCluster`: a PostgreSQL server of a drill's own (`initdb` + `pg_ctl`, data in
//! a temp dir, a free port on 127.0.0.1, trust auth, no durability), so a drill can
//! stop, crash and restart PostgreSQL without touching the machine's shared server on
//! 5432. When the PostgreSQL binaries are missing it skips loudly, unless
//! `BEACON_REQUIRE_POSTGRES=1` (CI), like `beacon_store::testing`.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// How long a start may take until the server accepts connections.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How often readiness is polled while starting.
const READY_POLL: Duration = Duration::from_millis(50);
/// The database drills use (created at the first start).
pub const DATABASE: &str = "beacon";

/// Where `initdb`, `pg_ctl`, `postgres` and `pg_isready` are (one directory).
#[derive(Debug, Clone)]
struct PgBin {
    dir: PathBuf,
}

impl PgBin {
    /// `initdb` on PATH (its real directory: /usr/local/bin holds symlinks), else the
    /// newest `/usr/lib/postgresql/*/bin`.
    fn find() -> Option<PgBin> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut candidates: Vec<PathBuf> = on_path;
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        // Newest major version first (directory names are numbers).
        versions.sort_by_key(|p| {
            std::cmp::Reverse(
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        candidates.extend(versions);
        candidates.into_iter().find_map(|dir| {
            let initdb = std::fs::canonicalize(dir.join("initdb")).ok()?;
            let dir = initdb.parent()?.to_path_buf();
            ["pg_ctl", "postgres", "pg_isready"]
                .iter()
                .all(|b| dir.join(b).is_file())
                .then_some(PgBin { dir })
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Who runs the server's programs: they refuse to run as root, so as root they run as
/// the `postgres` user.
#[derive(Debug, Clone)]
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> anyhow::Result<RunAs> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(RunAs::Me);
        }
        let user = nix::unistd::User::from_name("postgres")
            .context("cannot look up the postgres user")?
            .context("running as root and there is no `postgres` user to run PostgreSQL as")?;
        Ok(RunAs::Postgres {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// `program args…`, or `runuser -u postgres -- program args…` as root.
    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::Postgres { .. } => {
                // util-linux's runuser lives in /usr/sbin, which not every PATH has.
                let runuser = Path::new("/usr/sbin/runuser");
                let mut c = Command::new(if runuser.is_file() {
                    runuser
                } else {
                    Path::new("runuser")
                });
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
        }
    }

    /// Gives `path` to the user the server runs as.
    fn own(&self, path: &Path) -> anyhow::Result<()> {
        if let RunAs::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .with_context(|| format!("cannot chown {} to postgres", path.display()))?;
        }
        Ok(())
    }
}

/// A private PostgreSQL server; stopped (immediately) and deleted when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PgBin,
    run_as: RunAs,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    running: bool,
    /// Removed last, after the server has stopped.
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Initialises a cluster and starts it, with a database [`DATABASE`]. `Ok(None)`
    /// (after a loud `SKIPPED:` line) when the PostgreSQL binaries are not installed and
    /// `BEACON_REQUIRE_POSTGRES` is not `1`; with it, that is an error.
    pub async fn start() -> anyhow::Result<Option<PrivateCluster>> {
        let Some(bin) = PgBin::find() else {
            let why =
                "no initdb/pg_ctl/postgres/pg_isready on PATH or in /usr/lib/postgresql/*/bin";
            if std::env::var("BEACON_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                bail!("{why} and BEACON_REQUIRE_POSTGRES=1");
            }
            // Straight to the process's stderr: libtest captures `eprintln!` of passing
            // tests, and a skip must not go unnoticed.
            let line = format!(
                "SKIPPED: {why}; install PostgreSQL or set BEACON_REQUIRE_POSTGRES=1 to make \
                 this a failure\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return Ok(None);
        };
        let run_as = RunAs::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("beacon-pg-")
            .tempdir()
            .context("cannot create a temp dir for the cluster")?;
        run_as.own(dir.path())?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let port = free_port()?;
        let mut cluster = PrivateCluster {
            bin,
            run_as,
            port,
            data,
            log,
            running: false,
            dir,
        };
        cluster.init()?;
        cluster.start_server().await?;
        cluster.create_database().await?;
        Ok(Some(cluster))
    }

    fn init(&self) -> anyhow::Result<()> {
        let mut c = self.run_as.command(&self.bin.path("initdb"));
        c.arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg("--no-sync");
        self.run("initdb", c)?;
        // Speed over durability against power loss: nothing is flushed to disk. A commit
        // still writes its WAL to the OS before it answers (synchronous_commit stays
        // on), so a committed row survives a crash of the server (`crash`), which is
        // what drills simulate.
        let conf = format!(
            "\n# beacon-drills private cluster\nport = {}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\n\
             max_connections = 200\nshared_buffers = 32MB\nlog_min_messages = warning\n",
            self.port,
            self.data.display()
        );
        let path = self.data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.write_all(conf.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Runs one of the server's programs to completion; an error quotes its output.
    fn run(&self, what: &str, mut c: Command) -> anyhow::Result<()> {
        let out = c
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("cannot run {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}):\n{}{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                crate::procs::log_tail(&self.log)
            );
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut c = self.run_as.command(&self.bin.path("pg_ctl"));
        c.arg("-D").arg(&self.data).args(args);
        c
    }

    /// Starts the server (same port, same data) and waits until it accepts connections.
    async fn start_server(&mut self) -> anyhow::Result<()> {
        let mut c = self.pg_ctl(&["-W", "-l"]);
        c.arg(&self.log).arg("start");
        self.run("pg_ctl start", c)?;
        self.running = true;
        let started = Instant::now();
        loop {
            // A client program: it runs as anyone.
            let ready = Command::new(self.bin.path("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()
                .context("cannot run pg_isready")?;
            if ready.success() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "PostgreSQL on port {} not ready after {START_LIMIT:?}{}",
                    self.port,
                    crate::procs::log_tail(&self.log)
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url())
            .await
            .with_context(|| format!("cannot connect to {}", self.admin_url()))?;
        // A constant name: nothing from outside goes into this statement.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(&mut conn)
            .await
            .context("cannot create the drill database")?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Starts the stopped server again on the same port and data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.running {
            bail!("the cluster on port {} is already running", self.port);
        }
        self.start_server().await
    }

    /// A clean, fast shutdown (`pg_ctl stop -m fast`): open connections are closed.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop_with("fast")
    }

    /// A crash (`pg_ctl stop -m immediate`): every server process quits at once, without
    /// a checkpoint; the next start runs crash recovery.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.stop_with("immediate")
    }

    /// [`stop`](Self::stop), then start again on the same port and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again().await
    }

    fn stop_with(&mut self, mode: &str) -> anyhow::Result<()> {
        if !self.running {
            bail!("the cluster on port {} is not running", self.port);
        }
        // `-w`: pg_ctl returns once the server is gone (it polls the pid file itself).
        let c = self.pg_ctl(&["-w", "-t", "60", "-m", mode, "stop"]);
        self.run(&format!("pg_ctl stop -m {mode}"), c)?;
        self.running = false;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// `postgres://postgres@127.0.0.1:PORT/beacon`: what a runner's `DATABASE_URL` is.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.running {
            let mut c = self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
            let _ = c.current_dir(self.dir.path()).output();
        }
        // `dir` is removed after this body, with the server gone.
    }
}

/// A port nobody listens on now (the kernel's pick for 127.0.0.1:0).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("no local address")?.port())
}
