//! What a process costs, read from /proc: resident memory (once or sampled to a peak),
//! its CPU time and the whole machine's busy time. Linux only; `None` elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

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

/// The second field of a `/proc/<pid>/task/<tid>/schedstat` text: nanoseconds the
/// thread has spent runnable but waiting for a CPU.
fn parse_run_delay_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// Time the threads of process `pid` have spent ready to run but waiting for a CPU
/// (the scheduler's run queue), summed over its threads, in ms. `None` where
/// schedstat is not available. Threads that have exited are no longer counted.
pub fn run_queue_wait_ms(pid: u32) -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += parse_run_delay_ns(&text)?;
        }
    }
    Some(total as f64 / 1e6)
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
    fn the_run_delay_is_the_second_schedstat_field() {
        assert_eq!(
            parse_run_delay_ns("201527582 6318081 373\n"),
            Some(6_318_081)
        );
        assert_eq!(parse_run_delay_ns("12"), None);
        assert!(run_queue_wait_ms(std::process::id()).is_some_and(|ms| ms >= 0.0));
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
