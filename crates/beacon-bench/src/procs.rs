//! The processes under test: spawned from the release binaries, ready when their first
//! stdout line says `listening on http://ADDR` (never a sleep), killed when dropped;
//! a scratch directory for their config and logs; their resident memory from /proc.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::sync::oneshot;

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

/// A running child process, killed (SIGKILL) and reaped when dropped, on every path
/// out of the benchmark, errors included.
pub struct Service {
    name: String,
    child: Child,
    url: String,
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

    /// Fails if the child has exited (it should serve until killed).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited during the benchmark: {status}", self.name),
            Err(e) => bail!("cannot check on {}: {e}", self.name),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
fn log_tail(log: &Path) -> String {
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

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// The resident set size of process `pid`, in bytes (Linux only; `None` elsewhere).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// `utime + stime` of a `/proc/<pid>/stat` text, in clock ticks. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after `)`
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time (user + system, all threads) process `pid` has used so far, in ms, at
/// 10 ms resolution. `None` where /proc is not available.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_cpu_ticks(&stat)? as f64 * 1000.0 / USER_HZ)
}

/// Busy time of all CPUs together (user, nice, system, irq, softirq, steal) from the
/// first line of a `/proc/stat` text, in clock ticks.
fn parse_machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?)
}

/// CPU time every process on the machine has used so far, all cores together, in ms.
pub fn machine_busy_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    Some(parse_machine_busy_ticks(&stat)? as f64 * 1000.0 / USER_HZ)
}

/// Samples a process's RSS every `every` on a background task; `stop` returns the peak.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = oneshot::channel();
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        if let Some(rss) = rss_bytes(pid) {
                            seen.fetch_max(rss, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        RssSampler { peak, stop, task }
    }

    /// Stops sampling (after one last sample) and returns the peak in bytes (0 if no
    /// sample could be read).
    pub async fn stop(self, pid: u32) -> u64 {
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Some(rss) = rss_bytes(pid) {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        self.peak.load(Ordering::Relaxed)
    }
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

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        let stat = "4242 (beacon (x) y) S 1 4242 4242 0 -1 4194560 757 0 0 0 123 45 0 0 20 0";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert!(cpu_ms(std::process::id()).is_some());
    }

    #[test]
    fn reads_machine_busy_ticks() {
        let stat = "cpu  100 1 20 5000 7 3 4 5 0 0\ncpu0 50 0 10 2500 3 1 2 2 0 0\n";
        assert_eq!(
            parse_machine_busy_ticks(stat),
            Some(100 + 1 + 20 + 3 + 4 + 5)
        );
        assert_eq!(parse_machine_busy_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn reads_vmrss_in_bytes() {
        let status = "Name:\tbeacon-router\nVmPeak:\t  100 kB\nVmRSS:\t   14540 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss(status), Some(14_540 * 1024));
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
        // This very process has a resident set.
        assert!(rss_bytes(std::process::id()).unwrap_or(0) > 0);
    }
}
