//! One job on this instance: keeps the lease alive, dispatches pending executions up
//! to the job's limit, watches the deadline and the success threshold, and on the way
//! out either finalizes the job or hands its work back.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use beacon_core::status::{ExecutionCounts, failure_reason};
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_store::{ExecutionRecord, JobRecord};
use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::execution::{self, Outcome};
use super::{Ctx, JobControl, StopReason};
use crate::events::EventKind;
use crate::plan::StoredPlan;
use crate::views;

pub async fn run(ctx: Arc<Ctx>, job: JobRecord, control: Arc<JobControl>, tracker: TaskTracker) {
    let plan: StoredPlan = match serde_json::from_value(job.plan_json.clone()) {
        Ok(p) => p,
        Err(e) => {
            // A plan this build cannot read: stop loudly rather than guess.
            tracing::error!(job = %job.id, error = %e, "stored plan unreadable; cancelling the job");
            let f = Failure::new(
                ErrorCode::Other("PLAN_UNREADABLE".into()),
                Stage::Scheduler,
                format!("stored plan unreadable: {e}"),
            );
            let _ = ctx
                .store
                .cancel_unfinished(&job.id, &f, Some("plan_unreadable"))
                .await;
            publish_job(&ctx, &job.id).await;
            return;
        }
    };
    let plan = Arc::new(plan);
    let heartbeat_stop = CancellationToken::new();
    tracker.spawn(heartbeat(
        ctx.clone(),
        control.clone(),
        heartbeat_stop.clone(),
    ));
    publish_job(&ctx, &job.id).await;

    let deadline = job.started_at.unwrap_or_else(Utc::now)
        + chrono::Duration::from_std(plan.timeout()).unwrap_or_default();
    let deadline_in = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let deadline_at = tokio::time::Instant::now() + deadline_in;

    let mut counts = ctx.store.counts(&job.id).await.unwrap_or_default();
    let mut tasks: JoinSet<(String, Outcome)> = JoinSet::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut buffer: VecDeque<ExecutionRecord> = VecDeque::new();
    // Twice the job's call limit in hand: the extra executions have their attempt
    // started and wait only for a call slot (control.calls), keeping the store's write
    // off the critical path between one call ending and the next starting.
    let per_job = ctx.cfg.max_concurrency_per_job as usize * 2;
    loop {
        if counts.success_unreachable(job.min_success_rate) {
            tracing::info!(job = %job.id, ?counts, "min_success_rate can no longer be reached: stopping early");
            control.stop(StopReason::EarlyStop);
        }
        if control.token.is_cancelled() {
            break;
        }
        // Fill free job slots with pending executions, in cell order.
        while tasks.len() < per_job {
            if buffer.is_empty() {
                let exclude: Vec<String> = in_flight.iter().cloned().collect();
                match ctx
                    .store
                    .pending_executions(&job.id, (per_job * 2) as u32, &exclude)
                    .await
                {
                    Ok(rows) => buffer.extend(rows),
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "loading pending executions failed")
                    }
                }
            }
            let Some(exec) = buffer.pop_front() else {
                break;
            };
            if !in_flight.insert(exec.id.clone()) {
                continue;
            }
            let (ctx, plan, control) = (ctx.clone(), plan.clone(), control.clone());
            tasks.spawn(async move {
                let id = exec.id.clone();
                (id, execution::run(ctx, exec, plan, control).await)
            });
        }
        if tasks.is_empty() {
            // Nothing in flight and nothing pending: every execution is terminal.
            break;
        }
        tokio::select! {
            _ = control.token.cancelled() => break,
            _ = tokio::time::sleep_until(deadline_at) => {
                tracing::warn!(job = %job.id, "job deadline reached");
                control.stop(StopReason::Deadline);
                break;
            }
            Some(joined) = tasks.join_next() => {
                if let Ok((id, outcome)) = joined {
                    in_flight.remove(&id);
                    record(&mut counts, outcome);
                }
            }
        }
    }
    let reason = control.reason();
    // Early stop and deadline: cancel the rest in the store first, so nothing more is
    // spent, then let the aborted calls finish closing.
    match reason {
        Some(StopReason::EarlyStop) => {
            let f = Failure::new(
                ErrorCode::Cancelled,
                Stage::Scheduler,
                "cancelled: the job can no longer reach its min_success_rate",
            )
            .with_transient(false);
            log_err(
                ctx.store
                    .cancel_unfinished(
                        &job.id,
                        &f,
                        Some(failure_reason::MIN_SUCCESS_RATE_UNREACHABLE),
                    )
                    .await,
            );
        }
        Some(StopReason::Deadline) => {
            let f = Failure::new(
                ErrorCode::JobTimeout,
                Stage::Scheduler,
                format!("the job's timeout of {:?} ran out", plan.timeout()),
            )
            .with_transient(false);
            log_err(
                ctx.store
                    .cancel_unfinished(&job.id, &f, Some(failure_reason::JOB_TIMEOUT))
                    .await,
            );
        }
        _ => {}
    }
    while tasks.join_next().await.is_some() {}
    heartbeat_stop.cancel();
    match reason {
        Some(StopReason::LeaseLost) => {
            tracing::warn!(job = %job.id, "lease lost: another instance owns the job now");
        }
        None if control.token.is_cancelled() => {
            // Shutdown: hand the work back, not fail it.
            let n = ctx
                .store
                .requeue_unfinished(&job.id, &ctx.instance_id)
                .await
                .unwrap_or(0);
            log_err(ctx.store.release_lease(&job.id, &ctx.instance_id).await);
            tracing::info!(job = %job.id, handed_back = n, "shutdown: executions returned to pending");
        }
        _ => {
            // An early stop or deadline may have finalized the job already (in the
            // cancelling transaction); either way, report the terminal state once.
            let finished = match ctx.store.finalize_job(&job.id, Utc::now()).await {
                Ok(Some(done)) => Some(done),
                Ok(None) => ctx
                    .store
                    .get_job(&job.id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|j| j.status.is_terminal()),
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "finalizing failed");
                    None
                }
            };
            match finished {
                Some(done) => {
                    ctx.metrics.inc(
                        "beacon_runner_jobs_finished_total",
                        vec![("status", done.status.as_str().to_string())],
                    );
                    tracing::info!(job = %job.id, status = %done.status, reason = ?done.failure_reason, "job finished");
                }
                // Not every execution is terminal (a retry-failed raced us): let the
                // lease go so the job is claimed again.
                None => log_err(ctx.store.release_lease(&job.id, &ctx.instance_id).await),
            }
            publish_job(&ctx, &job.id).await;
        }
    }
}

fn record(counts: &mut ExecutionCounts, outcome: Outcome) {
    if let Outcome::Finished(status) = outcome {
        counts.pending = counts.pending.saturating_sub(1);
        counts.add(status, 1);
    }
}

fn log_err<T>(r: beacon_store::Result<T>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "store write failed");
    }
}

/// Publishes the job's current state to event subscribers.
pub async fn publish_job(ctx: &Ctx, job_id: &str) {
    if !ctx.events.has_subscribers() {
        return;
    }
    if let (Ok(Some(job)), Ok(counts)) = (
        ctx.store.get_job(job_id).await,
        ctx.store.counts(job_id).await,
    ) {
        ctx.events.publish(
            job_id,
            EventKind::JobUpdate,
            views::job(&job, &counts, false),
        );
    }
}

/// Renews the lease; a lost lease, or a cancel requested through another instance,
/// stops the job here.
async fn heartbeat(ctx: Arc<Ctx>, control: Arc<JobControl>, stop: CancellationToken) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = control.token.cancelled() => return,
            _ = tokio::time::sleep(ctx.cfg.heartbeat) => {}
        }
        match ctx
            .store
            .renew_lease(&control.job_id, &ctx.instance_id, ctx.cfg.lease, Utc::now())
            .await
        {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                control.stop(StopReason::LeaseLost);
                return;
            }
            Err(e) => {
                tracing::warn!(job = %control.job_id, error = %e, "lease renewal failed");
                if last_ok.elapsed() >= ctx.cfg.lease {
                    control.stop(StopReason::LeaseLost);
                    return;
                }
            }
        }
        if let Ok(Some(job)) = ctx.store.get_job(&control.job_id).await {
            if job.cancel_requested_at.is_some() {
                control.stop(StopReason::UserCancel);
                return;
            }
        }
    }
}
