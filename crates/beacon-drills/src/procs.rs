//! The processes under test: spawned with an exact environment, ready when their first
//! stdout line says `listening on http://ADDR` (never a sleep), stderr to a log file
//! quoted on failure; signalled (SIGTERM, SIGKILL) by their own PID, waited for with a
//! timeout, killed when dropped; a scratch directory for their config and logs. What
//! they cost (memory, CPU) is read by [`crate::usage`], re-exported here.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use crate::usage::{RssSampler, cpu_ms, machine_busy_ms, rss_bytes, run_queue_wait_ms};

/// How long a child may take to print its `listening on` line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of a child's stderr quoted when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// Where the binaries under test are: `given` (`--bin-dir`), else the directory of
/// this executable (`target/release` when built by the scripts).
pub fn bin_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(std::env::current_exe()
            .context("cannot locate this executable (pass --bin-dir)")?
            .parent()
            .context("this executable has no directory (pass --bin-dir)")?
            .to_path_buf()),
    }
}

/// A directory under the system temp dir, removed with everything in it when dropped.
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    pub fn new(prefix: &str) -> anyhow::Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place when dropped (for a look at logs and databases).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The environment a child starts with.
#[derive(Debug, Clone, Copy)]
pub enum ChildEnv<'a> {
    /// This process's environment, unchanged.
    Inherit,
    /// Exactly these variables and nothing else, so nothing from the caller's shell
    /// (`PORT`, `DATABASE_URL`, `RUST_LOG`, the router URL's aliases …) changes what
    /// the child does.
    Only(&'a [(&'a str, &'a str)]),
}

/// How often [`Service::wait_exit`] looks whether the child has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A running child process, killed (SIGKILL) and reaped when dropped, on every path
/// out of the benchmark or drill, errors included.
pub struct Service {
    name: String,
    child: Child,
    url: String,
    log: PathBuf,
    /// Set once the child has been reaped: from then on its PID may belong to another
    /// process, so no signal is sent any more.
    exited: Option<ExitStatus>,
    /// Kept open so a late write to stdout does not meet a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Service {
    /// Starts `program` with `args` and `env`, stderr to `log`, and waits for its first
    /// stdout line, which must be `listening on http://ADDR`.
    pub async fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: ChildEnv<'_>,
        log: &Path,
    ) -> anyhow::Result<Service>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if !program.is_file() {
            bail!(
                "{name}: no binary at {} (build it with `cargo build --release -p {name}` \
                 or pass --bin-dir)",
                program.display()
            );
        }
        let stderr =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(program);
        if let ChildEnv::Only(vars) = env {
            command.env_clear().envs(vars.iter().copied());
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name}: no stdout pipe");
        };
        // From here on the guard owns the child: any early return kills it.
        let mut guard = Starting { child: Some(child) };
        let read = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let n = reader.read_line(&mut line);
            (reader, n.map(|_| line))
        });
        let failure = |why: String| anyhow::anyhow!("{name} did not start: {why}{}", log_tail(log));
        let (reader, line) = match tokio::time::timeout(READY_TIMEOUT, read).await {
            Ok(Ok((reader, Ok(line)))) => (reader, line),
            Ok(Ok((_, Err(e)))) => return Err(failure(format!("cannot read its stdout: {e}"))),
            Ok(Err(e)) => return Err(failure(format!("reader task failed: {e}"))),
            Err(_) => {
                // Killing the child closes the pipe and ends the blocked read.
                drop(guard);
                return Err(failure(format!(
                    "no `listening on` line within {READY_TIMEOUT:?}"
                )));
            }
        };
        let Some(url) = parse_listening(&line) else {
            // Its stderr is a file, written before it closed stdout: quoting it is safe.
            drop(guard);
            let first = if line.is_empty() {
                "it exited without printing a line".to_string()
            } else {
                format!("its first stdout line was {:?}", line.trim_end())
            };
            return Err(failure(first));
        };
        let Some(child) = guard.child.take() else {
            bail!("{name}: lost the child process");
        };
        Ok(Service {
            name: name.to_string(),
            child,
            url,
            log: log.to_path_buf(),
            exited: None,
            _stdout: reader,
        })
    }

    /// The base URL from the `listening on` line, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the child's stderr goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of the child's stderr, ready to append to a failure message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Fails if the child has exited (it should serve until killed).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.try_exit_status() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited while it should serve: {status}{}",
                self.name,
                self.log_tail()
            ),
            Err(e) => bail!("cannot check on {}: {e}", self.name),
        }
    }

    /// Sends `signal` to this child's PID (and to no other process: a reaped child is
    /// never signalled, since its PID may have been given to someone else).
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if let Some(status) = self.try_exit_status()? {
            bail!(
                "{} already exited ({status}): not sending {signal}",
                self.name
            );
        }
        let pid = i32::try_from(self.child.id())
            .with_context(|| format!("{}: PID {} out of range", self.name, self.child.id()))?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
            .with_context(|| format!("cannot send {signal} to {} (PID {pid})", self.name))
    }

    /// SIGTERM: asks the child to shut down gracefully.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// SIGKILL, then waits until the child is gone (a crash, as far as it can tell).
    pub async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Waits up to `limit` for the child to exit and returns its status; an error if it
    /// is still running then (it is left running: the caller decides).
    pub async fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            if start.elapsed() >= limit {
                bail!(
                    "{} (PID {}) still running {limit:?} after it was asked to stop{}",
                    self.name,
                    self.child.id(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("cannot check on {}", self.name))?;
        }
        Ok(self.exited)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Kills a child that has not become a `Service` yet.
struct Starting {
    child: Option<Child>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The URL of a `listening on http://ADDR` line.
fn parse_listening(line: &str) -> Option<String> {
    let url = line.trim_end().strip_prefix("listening on ")?;
    url.starts_with("http://").then(|| url.to_string())
}

/// The last lines of a child's stderr log, for an error message.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!(
        "\n--- {} (last lines) ---\n{}",
        log.display(),
        tail.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:40123\n").as_deref(),
            Some("http://127.0.0.1:40123")
        );
        assert_eq!(parse_listening("Error: bind failed"), None);
        assert_eq!(parse_listening(""), None);
    }
}
