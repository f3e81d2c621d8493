//! The durable scheduler: claims jobs with a lease, runs each job's executions through
//! the router within per-job, per-region and per-instance limits, retries transient
//! failures, stops early when a job can no longer succeed, and computes the final
//! status once, when every execution is terminal.
//!
//! Cancellation is one token tree: process → job → the job's router calls. A user's
//! cancel, an early stop, the job deadline and a lost lease cancel the job's token
//! (with a recorded reason); shutdown cancels the process token, and the job hands its
//! unfinished executions back as `pending` instead of failing them.

mod control;
mod execution;
mod group;
mod job;
mod limits;
mod record;
mod signals;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use beacon_store::{AttemptUpdate, StartedAttempt, Store};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use control::{JobControl, Registry, StopReason};
pub use group::{GATHER, Gather, GroupCommit, TURNS as GROUP_TURNS};
pub use limits::Limits;
pub use signals::{CALLS_CLOSE_WAIT, CancelAcks, run as listen};
pub use writes::{WriteHealth, WriteTrouble};

use crate::config::{LimitsConfig, SchedulerConfig};
use crate::events::Events;
use crate::router::RouterClient;

/// Everything the scheduler's tasks share.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub router: Arc<RouterClient>,
    pub cfg: SchedulerConfig,
    pub router_timeout: Duration,
    pub instance_id: String,
    pub signing_key: SigningKey,
    pub events: Arc<Events>,
    pub metrics: Arc<beacon_service::metrics::Registry>,
    pub limits: Limits,
    /// `[limits]`: what is read from the router and kept per execution.
    pub limits_cfg: LimitsConfig,
    pub jobs: Registry,
    /// Whether the scheduler's writes go through right now (health).
    pub writes: WriteHealth,
    /// Attempt starts and ends waiting to be written as a group (`group.rs`).
    pub starts: GroupCommit<String, Option<StartedAttempt>>,
    pub finishes: GroupCommit<AttemptUpdate, bool>,
    /// Cancel routes waiting for another instance to stop a job's calls.
    pub acks: CancelAcks,
    /// Wakes the claim loop (a job was submitted, or a job slot freed up).
    pub wake: Notify,
}

/// Runs the claim loop (and the cancel-signal listener) until `token` is cancelled,
/// then waits for every job task to hand its work back.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken, tracker: TaskTracker) {
    tracing::info!(instance = %ctx.instance_id, "scheduler started");
    tracker.spawn(signals::run(ctx.clone(), token.clone(), tracker.clone()));
    loop {
        claim_available(&ctx, &token, &tracker).await;
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(ctx.cfg.poll_interval) => {}
        }
    }
    tracing::info!(
        jobs = ctx.jobs.len(),
        "scheduler stopping: handing work back"
    );
}

async fn claim_available(ctx: &Arc<Ctx>, token: &CancellationToken, tracker: &TaskTracker) {
    while ctx.jobs.len() < ctx.cfg.max_jobs as usize && !token.is_cancelled() {
        match ctx
            .store
            .claim_job(&ctx.instance_id, ctx.cfg.lease, Utc::now(), &ctx.jobs.ids())
            .await
        {
            Ok(Some(job)) => {
                tracing::info!(job = %job.id, total = job.total, "claimed job");
                let control = ctx.jobs.insert(
                    &job.id,
                    token.child_token(),
                    ctx.cfg.max_concurrency_per_job,
                );
                let (ctx, inner, shutdown) = (ctx.clone(), tracker.clone(), token.clone());
                tracker.spawn(async move {
                    job::run(ctx.clone(), job, control.clone(), inner, shutdown).await;
                    ctx.jobs.remove(&control.job_id);
                    ctx.wake.notify_one();
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "claiming jobs failed; will retry");
                return;
            }
        }
    }
}
