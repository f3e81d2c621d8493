//! The router-overhead verdict: figures per path, their difference, memory and pacing,
//! checked against the quality bar, rendered as a table or as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::Summary;

/// Quality bar: router p50 minus direct p50, in ms.
pub const TARGET_OVERHEAD_P50_MS: f64 = 0.3;
/// Quality bar: router p99 minus direct p99, in ms.
pub const TARGET_OVERHEAD_P99_MS: f64 = 1.0;
/// Quality bar: router resident memory under the load, in MiB.
pub const TARGET_RSS_MIB: f64 = 50.0;
/// The pacer "fell behind" below this share of the requested rate …
const MIN_RATE_SHARE: f64 = 0.99;
/// … or when it released the p99 request later than this, in ms.
const MAX_LAG_P99_MS: f64 = 1.0;
/// Other processes using more than this share of the machine make figures unreliable.
pub const MAX_BACKGROUND_SHARE: f64 = 0.05;

pub const MIB: f64 = 1024.0 * 1024.0;

/// CPU time (user + system) each process spent, the whole machine's busy time (all
/// cores) and the wall-clock time it was measured over, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    pub router_ms: f64,
    pub sim_ms: f64,
    pub generator_ms: f64,
    pub machine_ms: f64,
    pub wall_ms: f64,
    /// Time the router's threads were runnable but waiting for a CPU (schedstat).
    pub router_wait_ms: f64,
    /// The same for the simulator and the load generator.
    pub sim_wait_ms: f64,
    pub generator_wait_ms: f64,
}

impl CpuUse {
    pub fn plus(&self, o: &CpuUse) -> CpuUse {
        CpuUse {
            router_ms: self.router_ms + o.router_ms,
            sim_ms: self.sim_ms + o.sim_ms,
            generator_ms: self.generator_ms + o.generator_ms,
            machine_ms: self.machine_ms + o.machine_ms,
            wall_ms: self.wall_ms + o.wall_ms,
            router_wait_ms: self.router_wait_ms + o.router_wait_ms,
            sim_wait_ms: self.sim_wait_ms + o.sim_wait_ms,
            generator_wait_ms: self.generator_wait_ms + o.generator_wait_ms,
        }
    }

    pub fn minus(&self, o: &CpuUse) -> CpuUse {
        CpuUse {
            router_ms: self.router_ms - o.router_ms,
            sim_ms: self.sim_ms - o.sim_ms,
            generator_ms: self.generator_ms - o.generator_ms,
            machine_ms: self.machine_ms - o.machine_ms,
            wall_ms: self.wall_ms - o.wall_ms,
            router_wait_ms: self.router_wait_ms - o.router_wait_ms,
            sim_wait_ms: self.sim_wait_ms - o.sim_wait_ms,
            generator_wait_ms: self.generator_wait_ms - o.generator_wait_ms,
        }
    }

    /// CPU used by processes other than the three, in ms (never negative).
    fn others_ms(&self) -> f64 {
        (self.machine_ms - self.router_ms - self.sim_ms - self.generator_ms).max(0.0)
    }

    /// Microseconds per request of (router, sim, generator).
    fn per_request_us(&self, requests: u64) -> (f64, f64, f64) {
        if requests == 0 {
            return (0.0, 0.0, 0.0);
        }
        let us = |ms: f64| ms * 1000.0 / requests as f64;
        (us(self.router_ms), us(self.sim_ms), us(self.generator_ms))
    }

    /// Microseconds per request that (router, sim, generator) threads waited for a CPU.
    fn wait_per_request_us(&self, requests: u64) -> (f64, f64, f64) {
        let waits = CpuUse {
            router_ms: self.router_wait_ms,
            sim_ms: self.sim_wait_ms,
            generator_ms: self.generator_wait_ms,
            ..CpuUse::default()
        };
        waits.per_request_us(requests)
    }
}

/// One path's figures.
#[derive(Debug, Clone, Default)]
pub struct PathFigures {
    pub sent: u64,
    pub errors: u64,
    /// Successful requests only.
    pub latency: Summary,
    /// From the pacer's release to a worker starting the request.
    pub pickup: Summary,
    /// CPU spent by each process during this path's measured phases.
    pub cpu: CpuUse,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub rate: f64,
    pub connections: usize,
    pub duration_per_path: Duration,
    pub rounds: u32,
    pub warmup: Duration,
    pub direct: PathFigures,
    pub router: PathFigures,
    /// Errors while warming up (either path).
    pub warmup_errors: u64,
    /// The first few error messages, all phases.
    pub error_samples: Vec<String>,
    pub rss_idle_bytes: u64,
    pub rss_peak_bytes: u64,
    /// CPUs of the machine (background load is a share of all of them).
    pub cores: usize,
    /// Request-weighted mean over the measured phases.
    pub achieved_rate: f64,
    /// How late the pacer released requests (measured phases).
    pub lag: Summary,
}

impl Report {
    /// Router minus direct at p50, p90, p99 (ms).
    pub fn overhead(&self) -> (f64, f64, f64) {
        let (r, d) = (&self.router.latency, &self.direct.latency);
        (r.p50 - d.p50, r.p90 - d.p90, r.p99 - d.p99)
    }

    pub fn errors(&self) -> u64 {
        self.direct.errors + self.router.errors + self.warmup_errors
    }

    pub fn overhead_ok(&self) -> bool {
        let (p50, _, p99) = self.overhead();
        self.router.latency.count > 0
            && self.direct.latency.count > 0
            && p50 <= TARGET_OVERHEAD_P50_MS
            && p99 <= TARGET_OVERHEAD_P99_MS
    }

    /// An unreadable RSS (0) is not a pass.
    pub fn rss_ok(&self) -> bool {
        self.rss_peak_bytes > 0 && self.rss_peak_bytes as f64 / MIB <= TARGET_RSS_MIB
    }

    /// Share of the machine's CPU (all cores) used by other processes while measuring.
    pub fn background_share(&self) -> f64 {
        let cpu = self.direct.cpu.plus(&self.router.cpu);
        let capacity = cpu.wall_ms * self.cores as f64;
        if capacity <= 0.0 {
            return 0.0;
        }
        cpu.others_ms() / capacity
    }

    pub fn generator_fell_behind(&self) -> bool {
        self.achieved_rate < self.rate * MIN_RATE_SHARE || self.lag.p99 > MAX_LAG_P99_MS
    }

    /// Every target met and no request failed.
    pub fn pass(&self) -> bool {
        self.errors() == 0 && self.overhead_ok() && self.rss_ok()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "router overhead at {} req/s, {} connections, {} per path in {} round{} \
             (zero-latency simulator)",
            trim_float(self.rate),
            self.connections,
            human(self.duration_per_path),
            self.rounds,
            if self.rounds == 1 { "" } else { "s" },
        ));
        line(format!(
            "{:<12}{:>10}{:>8}{:>9}{:>9}{:>9}{:>9}",
            "path", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for (name, p) in [("direct (sim)", &self.direct), ("via router", &self.router)] {
            let l = &p.latency;
            line(format!(
                "{name:<12}{:>10}{:>8}{:>9.3}{:>9.3}{:>9.3}{:>9.3}",
                p.sent, p.errors, l.p50, l.p90, l.p99, l.max
            ));
        }
        let (p50, _, p99) = self.overhead();
        line(format!(
            "{:<12}{:>10}{:>8}{p50:>9.3}{:>9}{p99:>9.3}{:>9}   target p50 <= {:.3}, p99 <= {:.3}: {}",
            "overhead",
            "",
            "",
            "",
            "",
            TARGET_OVERHEAD_P50_MS,
            TARGET_OVERHEAD_P99_MS,
            verdict(self.overhead_ok()),
        ));
        line(format!(
            "router peak RSS: {:.1} MiB (idle {:.1} MiB; target <= {} MiB): {}",
            self.rss_peak_bytes as f64 / MIB,
            self.rss_idle_bytes as f64 / MIB,
            trim_float(TARGET_RSS_MIB),
            verdict(self.rss_ok()),
        ));
        line(format!(
            "achieved rate: {:.1} req/s (generator lag p99 {:.3} ms, max {:.3} ms; \
             worker pickup p99 direct {:.3} ms, router {:.3} ms)",
            self.achieved_rate,
            self.lag.p99,
            self.lag.max,
            self.direct.pickup.p99,
            self.router.pickup.p99,
        ));
        let (_, ds, dg) = self.direct.cpu.per_request_us(self.direct.sent);
        let (rr, rs, rg) = self.router.cpu.per_request_us(self.router.sent);
        line(format!(
            "CPU per request (us, 10 ms ticks): direct: sim {ds:.0}, generator {dg:.0}; \
             via router: router {rr:.0}, sim {rs:.0}, generator {rg:.0}; \
             other processes: {:.1} % of {} cores",
            self.background_share() * 100.0,
            self.cores,
        ));
        let (_, dsw, dgw) = self.direct.cpu.wait_per_request_us(self.direct.sent);
        let (rrw, rsw, rgw) = self.router.cpu.wait_per_request_us(self.router.sent);
        line(format!(
            "waiting for a CPU per request (us, run queue): direct: sim {dsw:.0}, generator \
             {dgw:.0}; via router: router {rrw:.0}, sim {rsw:.0}, generator {rgw:.0}"
        ));
        if self.background_share() > MAX_BACKGROUND_SHARE {
            line(format!(
                "WARNING: other processes used {:.0} % of the machine during the run; the \
                 figures are noisy (re-run on a quiet machine)",
                self.background_share() * 100.0
            ));
        }
        if self.generator_fell_behind() {
            line(format!(
                "WARNING: the load generator fell behind its schedule (below {:.0} % of the \
                 rate or lag p99 above {MAX_LAG_P99_MS} ms); latencies still count from the \
                 scheduled send times",
                MIN_RATE_SHARE * 100.0
            ));
        }
        if self.errors() > 0 {
            line(format!(
                "ERRORS: {} failed requests (direct {}, router {}, warm-up {}); first: {}",
                self.errors(),
                self.direct.errors,
                self.router.errors,
                self.warmup_errors,
                self.error_samples.join(" | ")
            ));
        }
        line(format!("result: {}", verdict(self.pass())));
        out
    }

    /// The machine-readable form (`--json`).
    pub fn json(&self) -> Value {
        let path = |p: &PathFigures| {
            let l = &p.latency;
            json!({"requests": p.sent, "errors": p.errors, "ok": l.count,
                   "p50_ms": l.p50, "p90_ms": l.p90, "p99_ms": l.p99,
                   "max_ms": l.max, "mean_ms": l.mean,
                   "pickup_p99_ms": p.pickup.p99,
                   "cpu_ms": {"router": p.cpu.router_ms, "sim": p.cpu.sim_ms,
                              "generator": p.cpu.generator_ms},
                   "run_queue_wait_ms": {"router": p.cpu.router_wait_ms,
                              "sim": p.cpu.sim_wait_ms, "generator": p.cpu.generator_wait_ms}})
        };
        let (p50, p90, p99) = self.overhead();
        json!({
            "benchmark": "router-overhead",
            "rate": self.rate,
            "connections": self.connections,
            "duration_per_path_s": self.duration_per_path.as_secs_f64(),
            "rounds": self.rounds,
            "warmup_s": self.warmup.as_secs_f64(),
            "direct": path(&self.direct),
            "router": path(&self.router),
            "overhead_ms": {"p50": p50, "p90": p90, "p99": p99},
            "router_rss_mib": {"idle": self.rss_idle_bytes as f64 / MIB,
                               "peak": self.rss_peak_bytes as f64 / MIB},
            "generator": {"achieved_rate": self.achieved_rate,
                          "lag_p99_ms": self.lag.p99, "lag_max_ms": self.lag.max,
                          "fell_behind": self.generator_fell_behind()},
            "machine": {"cores": self.cores,
                        "background_share": self.background_share()},
            "errors": {"total": self.errors(), "warmup": self.warmup_errors,
                       "samples": self.error_samples},
            "targets": {
                "overhead_p50_ms": TARGET_OVERHEAD_P50_MS,
                "overhead_p99_ms": TARGET_OVERHEAD_P99_MS,
                "rss_mib": TARGET_RSS_MIB,
                "overhead_pass": self.overhead_ok(),
                "rss_pass": self.rss_ok(),
            },
            "pass": self.pass(),
        })
    }
}

/// `1000` for 1000.0, `2.5` for 2.5.
pub fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// `5 s`, `2.5 s`, `500 ms`.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", trim_float(d.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p50: f64, p99: f64) -> PathFigures {
        PathFigures {
            sent: 5000,
            errors: 0,
            latency: Summary {
                count: 5000,
                p50,
                p90: p50,
                p99,
                max: p99,
                mean: p50,
            },
            pickup: Summary::default(),
            cpu: CpuUse::default(),
        }
    }

    fn report(router_p50: f64, router_p99: f64, rss_mib: f64) -> Report {
        Report {
            rate: 1000.0,
            connections: 64,
            duration_per_path: Duration::from_secs(5),
            rounds: 2,
            warmup: Duration::from_secs(1),
            direct: figures(0.2, 0.6),
            router: figures(router_p50, router_p99),
            warmup_errors: 0,
            error_samples: Vec::new(),
            rss_idle_bytes: 8 * 1024 * 1024,
            rss_peak_bytes: (rss_mib * MIB) as u64,
            cores: 2,
            achieved_rate: 999.9,
            lag: Summary::default(),
        }
    }

    #[test]
    fn verdicts_follow_the_quality_bar() {
        assert!(report(0.45, 1.3, 14.0).pass());
        assert!(!report(0.55, 1.3, 14.0).pass()); // p50 overhead 0.35
        assert!(!report(0.45, 1.7, 14.0).pass()); // p99 overhead 1.1
        assert!(!report(0.45, 1.3, 60.0).pass()); // memory
        let mut r = report(0.45, 1.3, 14.0);
        r.router.errors = 1;
        assert!(!r.pass());
        assert!(r.table().contains("ERRORS: 1 failed requests"));
        r.router.errors = 0;
        r.rss_peak_bytes = 0; // unreadable
        assert!(!r.pass());
    }

    #[test]
    fn the_table_shows_the_difference_and_the_verdict() {
        let table = report(0.45, 1.3, 14.2).table();
        assert!(table.starts_with("router overhead at 1000 req/s, 64 connections, 5 s per path"));
        assert!(table.contains("   0.250"), "{table}");
        assert!(table.contains("   0.700"), "{table}");
        assert!(table.contains("router peak RSS: 14.2 MiB"), "{table}");
        assert!(table.ends_with("result: PASS\n"), "{table}");
        assert!(!table.contains("WARNING"));
    }
}
