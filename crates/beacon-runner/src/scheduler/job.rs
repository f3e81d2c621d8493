//! One job on this instance: keeps the lease alive, dispatches pending executions up
//! to the job's limit, watches the deadline and the success threshold, and on the way
//! out either finalizes the job or hands its work back. A database that stops
//! answering pauses the job (nothing is thrown away, nothing new is called while the
//! lease is in doubt) and the job goes on when it is back.

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
use super::writes::{self, Written};
use super::{Ctx, JobControl, StopReason};
use crate::events::EventKind;
use crate::plan::StoredPlan;
use crate::views;

/// Pause before asking the database again after a failed read of the job's work.
const READ_RETRY: Duration = Duration::from_millis(500);

pub async fn run(
    ctx: Arc<Ctx>,
    job: JobRecord,
    control: Arc<JobControl>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
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
    // Executions whose outcome the database refused to store (see record.rs).
    let mut unstorable = 0usize;
    let mut tasks: JoinSet<(String, Outcome)> = JoinSet::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut buffer: VecDeque<ExecutionRecord> = VecDeque::new();
    // Twice the job's call limit in hand: the extra executions have their attempt
    // started and wait only for a call slot (control.calls), keeping the store's write
    // off the critical path between one call ending and the next starting.
    let per_job = ctx.cfg.max_concurrency_per_job as usize * 2;
    // The first wave takes only as many as may call at once; the second half joins
    // once every call slot is taken (or the first execution ends). Taken together,
    // the second half's tasks and start writes shared the two cores with the first
    // wave's calls and delayed its last ones by ~10 ms on PostgreSQL
    // (docs/benchmarks.md, "2026-12-05, fourth session").
    let mut window = ctx.cfg.max_concurrency_per_job as usize;
    // When the last read found fewer pending executions than it asked for. Retries
    // stay with their task, so until something outside requeues an execution (the
    // portal's retry of one execution) nothing new turns up: the job's tail would
    // otherwise ask again after every finished execution (180 empty reads at C = 90).
    // Asked again when nothing is in flight, or after READ_RETRY.
    let mut drained_at: Option<tokio::time::Instant> = None;
    loop {
        if counts.success_unreachable(job.min_success_rate) {
            tracing::info!(job = %job.id, ?counts, "min_success_rate can no longer be reached: stopping early");
            control.stop(StopReason::EarlyStop);
        }
        if control.token.is_cancelled() {
            break;
        }
        // Fill free job slots with pending executions, in cell order.
        let mut read_failed = false;
        while tasks.len() < window && !read_failed {
            if buffer.is_empty() {
                let drained = drained_at.is_some_and(|at| at.elapsed() < READ_RETRY);
                if drained && !tasks.is_empty() {
                    break;
                }
                let exclude: Vec<String> = in_flight.iter().cloned().collect();
                let limit = per_job * 2;
                match ctx
                    .store
                    .pending_executions(&job.id, limit as u32, &exclude)
                    .await
                {
                    Ok(rows) => {
                        drained_at = (rows.len() < limit).then(tokio::time::Instant::now);
                        buffer.extend(rows);
                    }
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e, "loading pending executions failed; trying again");
                        read_failed = true;
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
                (
                    id,
                    execution::run(ctx, exec, plan, control, deadline_at).await,
                )
            });
        }
        if tasks.is_empty() && read_failed {
            // The database did not answer: nothing is known to be left or done. Ask
            // again shortly rather than finalize (or hand back) on no information.
            tokio::select! {
                _ = control.token.cancelled() => break,
                _ = tokio::time::sleep(READ_RETRY) => continue,
            }
        }
        if tasks.is_empty() {
            // Nothing in flight and nothing pending: every execution is terminal.
            break;
        }
        tokio::select! {
            _ = control.token.cancelled() => break,
            _ = control.slots_taken(), if window < per_job => window = per_job,
            _ = tokio::time::sleep_until(deadline_at) => {
                tracing::warn!(job = %job.id, "job deadline reached");
                control.stop(StopReason::Deadline);
                break;
            }
            Some(joined) = tasks.join_next() => {
                window = per_job;
                if let Ok((id, outcome)) = joined {
                    in_flight.remove(&id);
                    unstorable += usize::from(outcome == Outcome::Unstorable);
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
            cancel_rest(
                &ctx,
                &job.id,
                &f,
                failure_reason::MIN_SUCCESS_RATE_UNREACHABLE,
                &shutdown,
            )
            .await;
        }
        Some(StopReason::Deadline) => {
            let f = Failure::new(
                ErrorCode::JobTimeout,
                Stage::Scheduler,
                format!("the job's timeout of {:?} ran out", plan.timeout()),
            )
            .with_transient(false);
            cancel_rest(&ctx, &job.id, &f, failure_reason::JOB_TIMEOUT, &shutdown).await;
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
            // Through an outage: the verdict is worth waiting for.
            let finalized = writes::retrying(&ctx.writes, &shutdown, "finalize", || {
                ctx.store.finalize_job(&job.id, Utc::now())
            })
            .await;
            let finished = match finalized {
                Written::Done(Some(done)) => Some(done),
                Written::Done(None) => ctx
                    .store
                    .get_job(&job.id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|j| j.status.is_terminal()),
                Written::Refused(_) | Written::Abandoned => None,
            };
            match finished {
                Some(done) => {
                    ctx.metrics.inc(
                        "beacon_runner_jobs_finished_total",
                        vec![("status", done.status.as_str().to_string())],
                    );
                    tracing::info!(job = %job.id, status = %done.status, reason = ?done.failure_reason, "job finished");
                }
                // Executions the database refused to store are still `running`:
                // releasing the lease would have the job claimed, re-queued and the
                // same answers bought again at once. Keep the lease until it expires
                // (one more try per lease period, bounded by max_total_attempts).
                None if unstorable > 0 => {
                    tracing::error!(job = %job.id, unstorable, "executions could not be stored; the job keeps its lease until it expires");
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

/// Cancels what is left of the job (early stop, deadline), through database outages:
/// until it is written, nothing stops another owner from buying the rest.
async fn cancel_rest(
    ctx: &Ctx,
    job_id: &str,
    failure: &Failure,
    reason: &str,
    shutdown: &CancellationToken,
) {
    let _ = writes::retrying(&ctx.writes, shutdown, "cancel the rest", || {
        ctx.store.cancel_unfinished(job_id, failure, Some(reason))
    })
    .await;
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

/// Renews the lease. A renewal refused (another instance owns the job) stops the job
/// here. A database that does not answer is not a lost lease: renewals are retried
/// every [`READ_RETRY`], and once the lease has gone unrenewed for its whole length
/// the job starts no new call until a renewal succeeds (calls in flight finish and
/// their answers are held for the database). The cancel check by polling is the
/// fallback for a cancel signal this instance missed.
async fn heartbeat(ctx: Arc<Ctx>, control: Arc<JobControl>, stop: CancellationToken) {
    let mut last_ok = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let pause = if failing {
            READ_RETRY
        } else {
            ctx.cfg.heartbeat
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = control.token.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        match ctx
            .store
            .renew_lease(&control.job_id, &ctx.instance_id, ctx.cfg.lease, Utc::now())
            .await
        {
            Ok(true) => {
                if failing {
                    tracing::info!(job = %control.job_id, "lease renewed again after the database came back");
                }
                failing = false;
                last_ok = tokio::time::Instant::now();
                control.set_lease_doubt(false);
            }
            Ok(false) => {
                control.stop(StopReason::LeaseLost);
                return;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(job = %control.job_id, error = %e, "lease renewal failed; retrying");
                }
                failing = true;
                if last_ok.elapsed() >= ctx.cfg.lease {
                    control.set_lease_doubt(true);
                }
                continue;
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
