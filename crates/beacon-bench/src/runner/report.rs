//! The runner benchmarks' verdict: one table per measurement kind (orchestration,
//! throughput, big job), the machine's background load, problems, and PASS/FAIL
//! against the quality bar; or the same as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::big_job::{BigJob, TARGET_ACCEPT, TARGET_RSS_MIB};
use super::cpu::CpuSpent;
use super::measure::JobFigures;
use super::median;
use super::scenarios::{Orchestration, TARGET_RATIO, Throughput, target_rate};
use crate::report::{MAX_BACKGROUND_SHARE, MIB, trim_float};

/// Everything one `beacon-bench runner` measured.
#[derive(Debug, Clone, Default)]
pub struct RunnerReport {
    pub orchestration: Vec<Orchestration>,
    pub throughput: Vec<Throughput>,
    pub big: Vec<BigJob>,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.3}", d.as_secs_f64()))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

impl RunnerReport {
    /// Orchestration and the write path are judged on the median of their runs
    /// (`--runs`; one run is its own median).
    pub fn pass(&self) -> bool {
        median::medians(&self.orchestration, &self.throughput)
            .iter()
            .all(median::Median::pass)
            && self.big.iter().all(BigJob::pass)
    }

    fn cpus(&self) -> Vec<&CpuSpent> {
        let mut v: Vec<&CpuSpent> = self.orchestration.iter().map(|o| &o.run.cpu).collect();
        v.extend(self.throughput.iter().map(|t| &t.run.cpu));
        v.extend(self.big.iter().map(|b| &b.cpu));
        v
    }

    /// The human-readable tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let _ = writeln!(
            out,
            "runner benchmarks on {cores} cores: each row a fresh stack (3 simulators, router, \
             runner) on a fresh database; 'other CPU' = other processes' share of all cores"
        );
        if let Some(first) = self.orchestration.first() {
            self.orchestration_table(&mut out, first);
        }
        if let Some(first) = self.throughput.first() {
            self.throughput_table(&mut out, first);
        }
        median::table(
            &mut out,
            &median::medians(&self.orchestration, &self.throughput),
        );
        if let Some(first) = self.big.first() {
            self.big_table(&mut out, first);
        }
        let ready: Vec<Duration> = self
            .orchestration
            .iter()
            .map(|o| o.runner_ready_in)
            .chain(self.throughput.iter().map(|t| t.runner_ready_in))
            .chain(self.big.iter().map(|b| b.runner_ready_in))
            .collect();
        if let (Some(lo), Some(hi)) = (ready.iter().min(), ready.iter().max()) {
            let _ = writeln!(
                out,
                "runner start to /readyz 200 (migrations included): {} to {} ms",
                lo.as_millis(),
                hi.as_millis()
            );
        }
        let worst = self
            .cpus()
            .iter()
            .map(|c| c.background_share())
            .fold(0.0, f64::max);
        if worst > MAX_BACKGROUND_SHARE {
            let _ = writeln!(
                out,
                "WARNING: other processes used up to {:.0} % of the machine during a \
                 measurement; those figures are noisy (re-run on a quiet machine)",
                worst * 100.0
            );
        }
        for problem in self.problems() {
            let _ = writeln!(out, "PROBLEM: {problem}");
        }
        let _ = writeln!(out, "result: {}", verdict(self.pass()));
        out
    }

    fn problems(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .orchestration
            .iter()
            .map(|o| &o.run)
            .chain(self.throughput.iter().map(|t| &t.run))
            .filter_map(JobFigures::problem)
            .collect();
        for b in &self.big {
            if !b.rows_ok() {
                v.push(format!(
                    "big job on {}: accepted {} and stored {} executions, expected {}",
                    b.backend,
                    b.accepted_total,
                    b.rows,
                    b.shape.executions()
                ));
            }
            if !b.final_state.is_terminal() {
                v.push(format!(
                    "big job on {}: still {} after the cancel",
                    b.backend, b.final_state.status
                ));
            }
        }
        v
    }

    fn orchestration_table(&self, out: &mut String, first: &Orchestration) {
        let _ = writeln!(
            out,
            "\norchestration: {} executions ({}), simulators {} ms; target: the job finished \
             (finished_at) within {:.2} x ceil(N / C) x {} ms of its 202 answer",
            first.shape.executions(),
            first.shape.describe(),
            first.latency.as_millis(),
            TARGET_RATIO,
            first.latency.as_millis(),
        );
        let _ = writeln!(
            out,
            "{:<9}{:>4}{:>10}{:>9}{:>8}{:>7}{:>8}{:>6}{:>10}{:>7}{:>7}{:>6}{:>8}  result",
            "backend",
            "C",
            "elapsed s",
            "runner s",
            "ideal s",
            "ratio",
            "exec/s",
            "calls",
            "open p/l",
            "first",
            "gap/r",
            "tail",
            "other",
        );
        for o in &self.orchestration {
            let r = &o.run;
            let _ = writeln!(
                out,
                "{:<9}{:>4}{:>10}{:>9}{:>8.3}{:>7}{:>8.1}{:>6}{:>10}{:>7}{:>7.1}{:>6}{:>8}  {}",
                o.backend.as_str(),
                o.concurrency,
                secs(r.elapsed),
                secs(r.runner_elapsed),
                o.ideal().as_secs_f64(),
                o.ratio().map_or("-".into(), |x| format!("{x:.3}")),
                r.rate(),
                r.calls.calls,
                format!("{}/{}", r.polled_max_in_flight, r.calls.max_overlap),
                ms(r.dispatch_ms),
                r.calls
                    .gap_per_round(u64::from(o.concurrency))
                    .as_secs_f64()
                    * 1000.0,
                ms(r.tail_ms),
                pct(r.cpu.background_share()),
                verdict(o.pass()),
            );
        }
        let _ = writeln!(
            out,
            "  elapsed: 202 answer to the first status poll (every {} ms) showing the job \
             terminal; runner: the job's finished_at - the 202 answer, judged (ratio); calls: provider \
             calls the simulators logged; open p/l: most calls in flight at one poll (three \
             reads in turn, so it can exceed C) / exactly, from the call logs; first: 202 \
             answer to the first call (ms); gap/r: ms per round between a slot's call ending \
             and its next call starting; tail: last call's end to finished_at (ms)",
            first.run.poll.as_millis(),
        );
    }

    fn throughput_table(&self, out: &mut String, first: &Throughput) {
        let _ = writeln!(
            out,
            "\nwrite path: {} executions ({}), zero-latency simulators, C = {}; target >= {} \
             executions/s completed and stored on PostgreSQL, >= {} on SQLite",
            first.shape.executions(),
            first.shape.describe(),
            first.concurrency,
            trim_float(target_rate(super::db::Backend::Postgres)),
            trim_float(target_rate(super::db::Backend::Sqlite)),
        );
        let _ = writeln!(
            out,
            "{:<9}{:>9}{:>8}{:>10}{:>9}{:>8}{:>8}{:>8}{:>9}{:>9}{:>8}  result",
            "backend",
            "runner s",
            "exec/s",
            "(polled)",
            "runner",
            "router",
            "sims",
            "pg",
            "our CPU",
            "RSS MiB",
            "other",
        );
        for t in &self.throughput {
            let r = &t.run;
            let (ru, ro, si, pg) = r.cpu.per_execution_us(r.state.progress.completed);
            let result = verdict(t.pass());
            let _ = writeln!(
                out,
                "{:<9}{:>9}{:>8.0}{:>10.0}{:>9.0}{:>8.0}{:>8.0}{:>8.0}{:>9}{:>9.1}{:>8}  {}",
                t.backend.as_str(),
                secs(r.runner_elapsed),
                r.runner_rate(),
                r.rate(),
                ru,
                ro,
                si,
                pg,
                pct(r.cpu.ours_share()),
                mib(r.rss_peak),
                pct(r.cpu.background_share()),
                result,
            );
        }
        let _ = writeln!(
            out,
            "  runner s: the job's finished_at - the 202 answer; exec/s: completed / runner s, \
             judged; (polled): the same from a status poll every {} ms; runner/router/sims/pg: \
             CPU microseconds per execution (10 ms ticks; pg = the database's server \
             processes); our CPU: all of them and this benchmark, share of all cores",
            first.run.poll.as_millis(),
        );
    }

    fn big_table(&self, out: &mut String, first: &BigJob) {
        let _ = writeln!(
            out,
            "\nbig job: {} executions ({}), zero-latency simulators, C = {}, cancelled after \
             ~{} s; targets: accepted (rows inserted) <= {} s, runner RSS <= {} MiB",
            first.shape.executions(),
            first.shape.describe(),
            first.concurrency,
            trim_float(first.ran_for.as_secs_f64().round()),
            TARGET_ACCEPT.as_secs(),
            trim_float(TARGET_RSS_MIB),
        );
        let _ = writeln!(
            out,
            "{:<9}{:>9}{:>10}{:>8}{:>9}{:>9}{:>7}{:>11}{:>8}{:>11}{:>8}  accept  RSS   result",
            "backend",
            "body KiB",
            "accept s",
            "rows",
            "RSS MiB",
            "at start",
            "ran s",
            "completed",
            "exec/s",
            "cancel ms",
            "other",
        );
        for b in &self.big {
            let _ = writeln!(
                out,
                "{:<9}{:>9.1}{:>10.3}{:>8}{:>9.1}{:>9.1}{:>7.1}{:>11}{:>8.0}{:>11.0}{:>8}  {:<6}  {:<4}  {}",
                b.backend.as_str(),
                b.body_bytes as f64 / 1024.0,
                b.accept.as_secs_f64(),
                b.rows,
                mib(b.rss_peak),
                mib(b.rss_before),
                b.ran_for.as_secs_f64(),
                b.completed,
                b.rate(),
                b.cancel.as_secs_f64() * 1000.0,
                pct(b.cpu.background_share()),
                verdict(b.accept_ok()),
                verdict(b.rss_ok()),
                verdict(b.pass()),
            );
        }
        let _ = writeln!(
            out,
            "  accept: POST /api/v1/jobs to its 202 (validation, signature, every row inserted); \
             rows: progress.total read back; RSS: the runner's peak VmRSS (every 50 ms) from \
             before the POST to after the cancel; exec/s: completed / ran s; cancel ms: \
             POST .../cancel to its answer (it waits for the calls in flight to close)"
        );
    }

    /// The machine-readable form (`--json`).
    pub fn json(&self) -> Value {
        json!({
            "benchmark": "runner",
            "cores": std::thread::available_parallelism().map_or(1, usize::from),
            "orchestration": self.orchestration.iter().map(|o| json!({
                "backend": o.backend.as_str(),
                "concurrency": o.concurrency,
                "latency_ms": o.latency.as_secs_f64() * 1000.0,
                "executions": o.shape.executions(),
                "ideal_s": o.ideal().as_secs_f64(),
                "ratio": o.ratio(),
                "runner_ready_ms": o.runner_ready_in.as_secs_f64() * 1000.0,
                "job": job_json(&o.run, u64::from(o.concurrency)),
                "pass": o.pass(),
            })).collect::<Vec<_>>(),
            "throughput": self.throughput.iter().map(|t| json!({
                "backend": t.backend.as_str(),
                "concurrency": t.concurrency,
                "executions": t.shape.executions(),
                "executions_per_s": t.run.rate(),
                "target_executions_per_s": target_rate(t.backend),
                "runner_ready_ms": t.runner_ready_in.as_secs_f64() * 1000.0,
                "job": job_json(&t.run, u64::from(t.concurrency)),
                "pass": t.pass(),
            })).collect::<Vec<_>>(),
            "big_job": self.big.iter().map(|b| json!({
                "backend": b.backend.as_str(),
                "concurrency": b.concurrency,
                "executions": b.shape.executions(),
                "body_bytes": b.body_bytes,
                "accept_s": b.accept.as_secs_f64(),
                "accepted_total": b.accepted_total,
                "rows": b.rows,
                "ran_s": b.ran_for.as_secs_f64(),
                "completed": b.completed,
                "executions_per_s": b.rate(),
                "cancel_ms": b.cancel.as_secs_f64() * 1000.0,
                "executions_cancelled": b.cancelled,
                "final_status": b.final_state.status,
                "rss_mib": {"start": mib(b.rss_before), "peak": mib(b.rss_peak)},
                "runner_ready_ms": b.runner_ready_in.as_secs_f64() * 1000.0,
                "cpu": b.cpu.json(),
                "accept_pass": b.accept_ok(),
                "rss_pass": b.rss_ok(),
                "pass": b.pass(),
            })).collect::<Vec<_>>(),
            "targets": {
                "orchestration_ratio": TARGET_RATIO,
                "throughput_executions_per_s": {
                    "postgres": target_rate(super::db::Backend::Postgres),
                    "sqlite": target_rate(super::db::Backend::Sqlite),
                },
                "big_job_accept_s": TARGET_ACCEPT.as_secs_f64(),
                "big_job_rss_mib": TARGET_RSS_MIB,
            },
            "medians": median::medians(&self.orchestration, &self.throughput)
                .iter()
                .map(median::Median::json)
                .collect::<Vec<_>>(),
            "problems": self.problems(),
            "pass": self.pass(),
        })
    }
}

fn job_json(r: &JobFigures, concurrency: u64) -> Value {
    let p = &r.state.progress;
    json!({
        "id": r.job_id,
        "status": r.state.status,
        "accept_ms": r.accept.as_secs_f64() * 1000.0,
        "elapsed_s": r.elapsed.map(|d| d.as_secs_f64()),
        "runner_elapsed_s": r.runner_elapsed.map(|d| d.as_secs_f64()),
        "runner_executions_per_s": r.runner_rate(),
        "progress": {"total": p.total, "completed": p.completed, "failed": p.failed,
                     "timeout": p.timeout, "cancelled": p.cancelled},
        "executions_per_s": r.rate(),
        "poll_ms": r.poll.as_secs_f64() * 1000.0,
        "polls": r.polls,
        "sims": {
            "started": r.sim_started,
            "calls": r.calls.calls,
            "not_ok": r.calls.not_ok,
            "max_in_flight_polled": r.polled_max_in_flight,
            "max_in_flight_exact": r.calls.max_overlap,
            "mean_in_flight": r.calls.mean_open(),
            "mean_call_ms": r.calls.mean_call().as_secs_f64() * 1000.0,
            "span_s": r.calls.span().as_secs_f64(),
            "gap_per_round_ms": r.calls.gap_per_round(concurrency).as_secs_f64() * 1000.0,
        },
        "first_call_ms": r.dispatch_ms,
        "tail_ms": r.tail_ms,
        "runner_rss_mib": {"start": mib(r.rss_before), "peak": mib(r.rss_peak)},
        "cpu": r.cpu.json(),
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
