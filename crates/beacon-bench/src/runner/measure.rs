//! One job from submission to its terminal status, measured from outside: the 202
//! answer's latency, the elapsed time to the first status poll that sees the job
//! terminal, the simulators' counters polled alongside (calls open at once), their call
//! logs afterwards, the runner's RSS (sampled every 50 ms) and every process's CPU.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use beacon_core::receipt::sha256_hex;

use super::api::{JobState, SimApi, SimCall, Submitted};
use super::calls::{CallView, ms_between};
use super::cpu::CpuSpent;
use super::scenarios::Ctx;
use super::stack::{PROBE_PROMPT, Stack};
use crate::procs::{RssSampler, rss_bytes};

/// How often the runner's RSS is read while a job runs.
pub const RSS_EVERY: Duration = Duration::from_millis(50);

/// What one job measured.
#[derive(Debug, Clone, Default)]
pub struct JobFigures {
    pub job_id: String,
    /// Executions the spec asks for.
    pub executions: u64,
    /// `total_executions` of the 202 answer.
    pub accepted_total: u64,
    /// `POST /api/v1/jobs` to its 202 answer.
    pub accept: Duration,
    /// 202 answer to the first poll answer showing a terminal status; `None` when the
    /// job did not end within the limit.
    pub elapsed: Option<Duration>,
    /// The runner's own `finished_at` minus the moment the 202 answer arrived (one
    /// machine, one clock): independent of the poll interval, to the millisecond.
    pub runner_elapsed: Option<Duration>,
    /// The last state read.
    pub state: JobState,
    /// The status poll interval, and how many polls were made.
    pub poll: Duration,
    pub polls: u64,
    /// Most calls in flight at one poll, all simulators together.
    pub polled_max_in_flight: u64,
    /// Calls the simulators counted during the job (`started`, probes included).
    pub sim_started: u64,
    pub calls: CallView,
    /// 202 answer to the first call's start, in ms.
    pub dispatch_ms: Option<f64>,
    /// Last call's end to the job's `finished_at`, in ms.
    pub tail_ms: Option<f64>,
    pub cpu: CpuSpent,
    pub rss_before: u64,
    pub rss_peak: u64,
}

impl JobFigures {
    /// Every execution completed, as many as asked.
    pub fn all_completed(&self) -> bool {
        self.state.status == "completed"
            && self.accepted_total == self.executions
            && self.state.progress.completed == self.executions
    }

    /// Executions completed and stored per second of `elapsed` (as the poll saw it).
    pub fn rate(&self) -> f64 {
        per_second(self.state.progress.completed, self.elapsed)
    }

    /// The same per second of `runner_elapsed` (as the runner recorded it).
    pub fn runner_rate(&self) -> f64 {
        per_second(self.state.progress.completed, self.runner_elapsed)
    }

    /// What went wrong, if anything, in a few words.
    pub fn problem(&self) -> Option<String> {
        if self.elapsed.is_none() {
            return Some(format!(
                "job {} did not end in time (status {}, {} of {} completed)",
                self.job_id, self.state.status, self.state.progress.completed, self.executions
            ));
        }
        if !self.all_completed() {
            let p = &self.state.progress;
            return Some(format!(
                "job {} ended {} ({:?}): accepted {}, completed {}, failed {}, timeout {}, \
                 cancelled {} of {}",
                self.job_id,
                self.state.status,
                self.state.failure_reason,
                self.accepted_total,
                p.completed,
                p.failed,
                p.timeout,
                p.cancelled,
                self.executions
            ));
        }
        None
    }
}

fn per_second(n: u64, over: Option<Duration>) -> f64 {
    match over {
        Some(d) if !d.is_zero() => n as f64 / d.as_secs_f64(),
        _ => 0.0,
    }
}

/// Submits `body` (a spec of `executions` executions), polls every `poll` until the
/// job is terminal or `limit` has passed since the 202, and gathers the figures.
pub async fn run_to_end(
    stack: &Stack,
    body: Vec<u8>,
    executions: u64,
    (ctx, poll): (&Ctx, Duration),
    limit: Duration,
) -> anyhow::Result<JobFigures> {
    let before = sim_counters(&stack.sim_apis).await?;
    let cpu_before = stack.cpu_snapshot().await;
    let pid = stack.runner.pid();
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let sampler = RssSampler::start(pid, RSS_EVERY);
    let submitted = stack.runner_api.submit(body).await?;
    let mut f = JobFigures {
        job_id: submitted.job_id.clone(),
        executions,
        accepted_total: submitted.total,
        accept: submitted.latency,
        poll,
        rss_before,
        ..JobFigures::default()
    };
    watch(stack, &submitted, poll, limit, &mut f).await?;
    f.rss_peak = sampler.stop(pid).await;
    f.cpu = CpuSpent::between(&cpu_before, &stack.cpu_snapshot().await);
    let after = sim_counters(&stack.sim_apis).await?;
    f.sim_started = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    let mut calls = Vec::new();
    for (api, since) in stack.sim_apis.iter().zip(&before) {
        calls.extend(api.calls_since(*since).await?);
    }
    let probe = sha256_hex(PROBE_PROMPT);
    if let Some(dir) = &ctx.dump_calls {
        dump(dir, &f.job_id, &submitted, &calls, &probe)?;
    }
    f.calls = CallView::of(&calls, &probe);
    f.dispatch_ms = f
        .calls
        .first_start
        .map(|t| ms_between(submitted.at_wall, t));
    f.tail_ms = match (f.calls.last_end, f.state.finished_at) {
        (Some(end), Some(fin)) => Some(ms_between(end, fin)),
        _ => None,
    };
    f.runner_elapsed = f
        .state
        .finished_at
        .and_then(|fin| (fin - submitted.at_wall).to_std().ok());
    Ok(f)
}

/// The job's calls as JSON lines, by start time, with times in ms from the 202 answer.
fn dump(
    dir: &Path,
    job_id: &str,
    submitted: &Submitted,
    calls: &[SimCall],
    probe: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut job: Vec<&SimCall> = calls.iter().filter(|c| c.prompt_sha256 != probe).collect();
    job.sort_by_key(|c| c.started_at);
    let mut text = String::new();
    for c in job {
        let line = serde_json::json!({
            "start_ms": ms_between(submitted.at_wall, c.started_at),
            "end_ms": c.ended_at.map(|e| ms_between(submitted.at_wall, e)),
            "started_at": c.started_at,
            "ended_at": c.ended_at,
            "region": c.region,
            "model": c.model,
            "prompt_sha256": c.prompt_sha256,
            "outcome": c.outcome,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let path = dir.join(format!("{job_id}.jsonl"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Each simulator's `started` counter (its next call gets a higher id).
async fn sim_counters(sims: &[SimApi]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(sims.len());
    for s in sims {
        out.push(s.counters().await?.started);
    }
    Ok(out)
}

/// Calls in flight now, all simulators together.
async fn in_flight(sims: &[SimApi]) -> anyhow::Result<u64> {
    let mut total = 0;
    for s in sims {
        total += s.counters().await?.in_flight;
    }
    Ok(total)
}

async fn watch(
    stack: &Stack,
    submitted: &Submitted,
    every: Duration,
    limit: Duration,
    f: &mut JobFigures,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (state, open) = tokio::join!(
            stack.runner_api.job(&submitted.job_id),
            in_flight(&stack.sim_apis)
        );
        let seen = Instant::now();
        f.state = state?;
        f.polls += 1;
        f.polled_max_in_flight = f.polled_max_in_flight.max(open?);
        if f.state.is_terminal() {
            f.elapsed = Some(seen - submitted.at);
            return Ok(());
        }
        if seen - submitted.at > limit {
            return Ok(());
        }
    }
}

/// A job of 900 executions, `completed` of them, that ended `elapsed_ms` after its 202
/// answer and was seen then by a 20 ms poll (the verdict and table tests).
#[cfg(test)]
pub fn test_job(elapsed_ms: u64, completed: u64) -> JobFigures {
    JobFigures {
        executions: 900,
        accepted_total: 900,
        elapsed: Some(Duration::from_millis(elapsed_ms)),
        runner_elapsed: Some(Duration::from_millis(elapsed_ms)),
        poll: Duration::from_millis(20),
        state: super::api::JobState {
            status: "completed".into(),
            progress: beacon_drills::api::Progress {
                total: 900,
                completed,
                ..Default::default()
            },
            ..Default::default()
        },
        ..JobFigures::default()
    }
}
