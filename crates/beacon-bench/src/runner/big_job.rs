//! The big job: a 100,000-execution spec (the runner's limit) against zero-latency
//! simulators. Measured: the submission's latency (validation, signature, every row
//! inserted in one transaction), that every row is there, the runner's RSS peak from
//! before the submission until the job has run for a while and been cancelled, how
//! many executions it completed meanwhile, and how long the cancel took.

use std::time::{Duration, Instant};

use super::api::JobState;
use super::cpu::CpuSpent;
use super::db::Backend;
use super::measure::RSS_EVERY;
use super::scenarios::Ctx;
use super::spec::{Shape, big_job_models, big_job_shape, job_id, signed_body};
use super::stack::{Stack, StackSpec};
use crate::procs::{RssSampler, rss_bytes};
use crate::report::MIB;

/// Quality bar: accepting the job, rows inserted.
pub const TARGET_ACCEPT: Duration = Duration::from_secs(5);
/// Quality bar: the runner's RSS while the job runs, in MiB.
pub const TARGET_RSS_MIB: f64 = 250.0;
/// Progress poll interval: a status read counts 100,000 rows, so not every 20 ms.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct BigJob {
    pub backend: Backend,
    pub concurrency: u32,
    pub shape: Shape,
    pub body_bytes: usize,
    pub runner_ready_in: Duration,
    /// `POST /api/v1/jobs` to its 202 answer.
    pub accept: Duration,
    /// `total_executions` of the 202 answer.
    pub accepted_total: u64,
    /// `progress.total` read back: the execution rows stored.
    pub rows: u64,
    /// From the 202 answer to the cancel request.
    pub ran_for: Duration,
    /// Executions completed before the cancel (read back after it).
    pub completed: u64,
    /// The cancel's answer time and how many executions it cancelled.
    pub cancel: Duration,
    pub cancelled: u64,
    pub final_state: JobState,
    pub rss_before: u64,
    pub rss_peak: u64,
    pub cpu: CpuSpent,
}

impl BigJob {
    pub fn rows_ok(&self) -> bool {
        let n = self.shape.executions();
        self.accepted_total == n && self.rows == n
    }

    pub fn accept_ok(&self) -> bool {
        self.accept <= TARGET_ACCEPT
    }

    /// An unreadable RSS (0) is not a pass.
    pub fn rss_ok(&self) -> bool {
        self.rss_peak > 0 && self.rss_peak as f64 / MIB <= TARGET_RSS_MIB
    }

    /// Executions completed per second while it ran.
    pub fn rate(&self) -> f64 {
        if self.ran_for.is_zero() {
            return 0.0;
        }
        self.completed as f64 / self.ran_for.as_secs_f64()
    }

    pub fn pass(&self) -> bool {
        self.rows_ok() && self.accept_ok() && self.rss_ok() && self.final_state.is_terminal()
    }
}

pub async fn measure(
    ctx: &Ctx,
    backend: Backend,
    concurrency: u32,
    run_for: Duration,
) -> anyhow::Result<BigJob> {
    let models = big_job_models();
    let mut stack = Stack::start(&StackSpec {
        backend,
        latency: Duration::ZERO,
        models: &models,
        concurrency,
        postgres_url: &ctx.postgres_url,
        bin_dir: &ctx.bin_dir,
    })
    .await?;
    let shape = big_job_shape();
    let body = signed_body(&job_id(&format!("big-{backend}")), &shape, &ctx.key)?;
    let body_bytes = body.len();
    let cpu_before = stack.cpu_snapshot().await;
    let pid = stack.runner.pid();
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let sampler = RssSampler::start(pid, RSS_EVERY);
    let submitted = stack.runner_api.submit(body).await?;
    let api = &stack.runner_api;
    let mut state = api.job(&submitted.job_id).await?;
    let rows = state.progress.total;
    let until = submitted.at + run_for;
    while Instant::now() < until && !state.is_terminal() {
        tokio::time::sleep(POLL.min(until.saturating_duration_since(Instant::now()))).await;
        state = api.job(&submitted.job_id).await?;
    }
    let ran_for = submitted.at.elapsed();
    let (cancel, answer) = api.cancel(&submitted.job_id).await?;
    let final_state = api.job(&submitted.job_id).await?;
    let rss_peak = sampler.stop(pid).await;
    let cpu = CpuSpent::between(&cpu_before, &stack.cpu_snapshot().await);
    stack.check_alive()?;
    if ctx.keep {
        stack.keep();
    }
    Ok(BigJob {
        backend,
        concurrency,
        shape,
        body_bytes,
        runner_ready_in: stack.runner_ready_in,
        accept: submitted.latency,
        accepted_total: submitted.total,
        rows,
        ran_for,
        completed: final_state.progress.completed,
        cancel,
        cancelled: answer["executions_cancelled"].as_u64().unwrap_or(0),
        final_state,
        rss_before,
        rss_peak,
        cpu,
    })
}
