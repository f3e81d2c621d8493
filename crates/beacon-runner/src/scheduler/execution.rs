//! One execution's life on this instance: wait for the router's breaker, start an
//! attempt (fenced by the lease), wait for a call slot, call the router with the
//! attempt's call key as `Idempotency-Key` (an attempt after an interrupted one re-sends
//! that one's key, so an answer the router already holds is replayed, not bought
//! again: `beacon_store::StartedAttempt`), and store the answer or the failure.
//!
//! Two budgets bound what is spent. A call that may have reached a provider is
//! "bought": transient failures of those retry up to `max_attempts`. A call that
//! provably bought nothing (the router could not be reached, or answered that no
//! provider could take it, with `retry_after` when it knows) waits for free, up to
//! `max_wait_for_provider` and within the job's deadline. Behind both,
//! `max_total_attempts` caps the attempts of the execution's whole life: one that has
//! used that many when it is dispatched (after restarts, hand-backs, a database that
//! refused its outcome) fails at once. A cancelled token aborts the call in flight.
//! Each attempt is the root span of a trace of its own (`execution`, docs/operations.md
//! "Traces"): the router call is its child, and its outcome and failure code end it.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::status::ExecutionStatus;
use beacon_core::wire::InferenceRequest;
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_service::telemetry;
use beacon_store::{AttemptUpdate, ExecutionRecord};
use chrono::Utc;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::group;
use super::record::{self, check_answer};
use super::writes::{self, Written};
use super::{Ctx, JobControl};
use crate::events::EventKind;
use crate::plan::StoredPlan;
use crate::router::{CallResult, traceparent};
use crate::views;

/// How an execution task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Reached a terminal status and stored it.
    Finished(ExecutionStatus),
    /// Stored as `retrying` (used inside this module only).
    Retrying,
    /// Stopped by the job's token (cancel, early stop, deadline, shutdown); the job
    /// decides what the row becomes.
    Interrupted,
    /// The store refused the write: lease lost or the row was already terminal.
    Fenced,
    /// The database refused both the outcome and the failure that explains it: the
    /// row is left as it was (see `record::store_final`).
    Unstorable,
}

/// What the attempt loop does after a failed call.
enum Next {
    Retry(Duration),
    Stop,
}

pub async fn run(
    ctx: Arc<Ctx>,
    exec: ExecutionRecord,
    plan: Arc<StoredPlan>,
    control: Arc<JobControl>,
    deadline: Instant,
) -> Outcome {
    let Some(question) = plan.question(&exec.question_id) else {
        let f = Failure::new(
            ErrorCode::Other("QUESTION_MISSING".into()),
            Stage::Scheduler,
            format!("question {} is not in the job's plan", exec.question_id),
        );
        return finish_failure(&ctx, &control, &exec, &plan, "", 0, f, None).await;
    };
    let prompt = question.text.as_str();
    let token = &control.token;
    let mut budget = Budget::default();
    if exec.attempt_count >= ctx.cfg.max_total_attempts {
        let f = Failure::new(
            ErrorCode::AttemptsExhausted,
            Stage::Scheduler,
            format!(
                "{} attempts already made over this execution's life \
                 (scheduler.max_total_attempts = {}): nothing more is bought",
                exec.attempt_count, ctx.cfg.max_total_attempts
            ),
        )
        .with_transient(false);
        return finish_failure(&ctx, &control, &exec, &plan, prompt, 0, f, None).await;
    }
    loop {
        // A router behind an open breaker gets no attempts; the execution waits, and
        // the first waiter after the open period becomes the breaker's trial.
        let permit = tokio::select! {
            _ = token.cancelled() => return Outcome::Interrupted,
            p = ctx.router.breaker.acquire() => p,
        };
        // The attempt is recorded before waiting for a call slot, so the write is
        // done by the time a slot frees up (the orchestration benchmark's finding).
        // Only when a slot is free already is the start urgent (group.rs).
        // Nothing has been bought yet, so an outage here is simply waited out.
        let waiting = control.waiting();
        let started = writes::retrying(&ctx.writes, token, "attempt start", || {
            ctx.starts.submit(exec.id.clone(), waiting.urgent, |ids| {
                group::start_group(ctx.store.as_ref(), &ctx.instance_id, ids)
            })
        })
        .await;
        let (attempt, call_key) = match started {
            Written::Done(Some(a)) => (a.number, a.call_key),
            Written::Done(None) => return Outcome::Fenced,
            Written::Abandoned => return Outcome::Interrupted,
            Written::Refused(e) => {
                tracing::error!(execution = %exec.id, error = %e, "cannot start an attempt");
                return Outcome::Unstorable;
            }
        };
        // Each attempt is a trace of its own, until its outcome is stored.
        let span = attempt_span(&exec, attempt);
        let permits = tokio::select! {
            _ = token.cancelled() => return Outcome::Interrupted,
            p = ctx.limits.acquire(&control.calls, &exec.region) => p,
        };
        drop(waiting);
        // While the lease cannot be renewed (database unreachable for a lease period)
        // another instance may take the job over: start nothing new until it can.
        if !control.wait_lease_confirmed().await {
            return Outcome::Interrupted;
        }
        publish(&ctx, &exec, &plan).await;
        let request = InferenceRequest {
            model: exec.model_id.clone(),
            prompt: prompt.to_string(),
            temperature: plan.temperature,
            max_tokens: plan.max_tokens,
            region_preference: Some(exec.region.clone()),
            allow_region_fallback: false,
            cost_priority: true,
            trace_id: Some(plan.trace_id.clone()),
            timeout_ms: None,
        };
        let timeout = plan.provider_timeout().min(ctx.router_timeout);
        let parent = traceparent(&plan.trace_id);
        let called = Instant::now();
        let result = {
            let _call = control.call();
            // An answer that is already in is kept even if the token fired at the same
            // moment: it was paid for, and storing it is fenced (a cancel that landed
            // first in the store still wins there).
            tokio::select! {
                biased;
                r = ctx.router.infer(permit, &request, &call_key, &parent, timeout)
                    .instrument(span.clone()) => Some(r),
                _ = token.cancelled() => None,
            }
        };
        drop(permits);
        // The freed slot's next call goes first: when many calls end together (every
        // round at a high concurrency), storing this answer (classify, sign, write)
        // would otherwise run before the executions waiting for a slot are scheduled,
        // and each round's calls would start later and later.
        tokio::task::yield_now().await;
        let latency = called.elapsed();
        ctx.metrics.observe(
            "beacon_runner_router_call_seconds",
            vec![("region", exec.region.clone())],
            latency,
        );
        let Some(result) = result else {
            span.record("outcome", "interrupted");
            return Outcome::Interrupted;
        };
        let (failure, bought) = match result {
            CallResult::Answer(answer) => {
                match check_answer(&answer, &exec, ctx.limits_cfg.max_answer_bytes) {
                    Ok(()) => {
                        let update = record::answer_update(
                            &ctx, &exec, &plan, prompt, attempt, answer, latency,
                        );
                        span.record("outcome", "answered");
                        return finish(&ctx, &control, &exec, &plan, prompt, &update)
                            .instrument(span)
                            .await;
                    }
                    Err(f) => (f, true),
                }
            }
            CallResult::Failed { failure, bought } => (failure, bought),
        };
        ctx.metrics.inc(
            "beacon_runner_attempt_failures_total",
            vec![("code", failure.code.to_string())],
        );
        telemetry::record_failure(&span, failure.code.as_str(), &failure.message);
        let wait = match budget.next(&ctx, &failure, bought, deadline) {
            Next::Retry(wait) => wait,
            Next::Stop => {
                span.record("outcome", "failed");
                return finish_failure(
                    &ctx,
                    &control,
                    &exec,
                    &plan,
                    prompt,
                    attempt,
                    failure,
                    Some(latency),
                )
                .instrument(span)
                .await;
            }
        };
        let update = AttemptUpdate {
            status: ExecutionStatus::Retrying,
            attempt_outcome: if bought { "failed" } else { "unavailable" }.into(),
            next_attempt_at: Some(
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
            ),
            ..record::failed_update(&exec, attempt, &failure, latency)
        };
        span.record("outcome", "retrying");
        match record::write(&ctx, &control, &update)
            .instrument(span.clone())
            .await
        {
            Ok(Outcome::Retrying) => publish(&ctx, &exec, &plan).await,
            Ok(other) => return other,
            Err(e) => {
                // Not even `retrying` can be stored: end the execution with the reason.
                let f = Failure::new(
                    ErrorCode::StoreWriteFailed,
                    Stage::Scheduler,
                    format!("the database refused to record a retry: {e}"),
                )
                .with_transient(false);
                return finish_failure(&ctx, &control, &exec, &plan, prompt, attempt, f, None)
                    .instrument(span)
                    .await;
            }
        }
        // The attempt's trace ends here; the wait before the next one is not part of it.
        drop(span);
        tokio::select! {
            _ = token.cancelled() => return Outcome::Interrupted,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The root span of one attempt (a new trace): which execution, of which job, which
/// attempt; `outcome` and `failure_code` are recorded when it ends.
fn attempt_span(exec: &ExecutionRecord, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "execution",
        job_id = exec.job_id.as_str(),
        execution_id = exec.id.as_str(),
        question_id = exec.question_id.as_str(),
        model = exec.model_id.as_str(),
        region = exec.region.as_str(),
        run_index = exec.run_index,
        attempt = attempt,
        outcome = Empty,
        failure_code = Empty,
    )
}

/// What one execution has spent in this run.
#[derive(Default)]
struct Budget {
    /// Failed calls that may have reached a provider.
    bought: u32,
    /// Failed calls that provably reached none.
    free: u32,
    /// Time waited after those.
    waited: Duration,
}

impl Budget {
    /// Whether to try again after `failure`, and after how long.
    fn next(&mut self, ctx: &Ctx, failure: &Failure, bought: bool, deadline: Instant) -> Next {
        if !failure.transient {
            return Next::Stop;
        }
        if bought {
            self.bought += 1;
            if self.bought >= ctx.cfg.max_attempts {
                return Next::Stop;
            }
            return Next::Retry(backoff(ctx, self.bought, failure.retry_after));
        }
        // Nothing was bought: wait for the region (or the router) to come back, as long
        // as the router says it takes (`retry_after`), within both limits.
        self.free += 1;
        let wait = backoff(ctx, self.free, None).max(retry_after(failure));
        let within_budget = self.waited + wait <= ctx.cfg.max_wait_for_provider;
        let before_deadline = Instant::now() + wait < deadline;
        if !(within_budget && before_deadline) {
            return Next::Stop;
        }
        self.waited += wait;
        Next::Retry(wait)
    }
}

/// The peer's `retry_after` (seconds) as a duration, plus a little jitter so that the
/// executions waiting for the same ejection do not all arrive in the same millisecond.
fn retry_after(f: &Failure) -> Duration {
    match f.retry_after {
        Some(s) if s.is_finite() && s > 0.0 => {
            Duration::from_secs_f64(s.min(86_400.0)).mul_f64(1.0 + jitter() / 10.0)
        }
        _ => Duration::ZERO,
    }
}

/// A uniform draw in [0, 1).
fn jitter() -> f64 {
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    f64::from(u16::from_le_bytes(r)) / 65_536.0
}

/// Exponential backoff with jitter between `backoff_base` and `backoff_max`, at least
/// what the peer asked for.
fn backoff(ctx: &Ctx, tries: u32, retry_after: Option<f64>) -> Duration {
    let exp = ctx
        .cfg
        .backoff_base
        .saturating_mul(1u32 << (tries.saturating_sub(1)).min(16))
        .min(ctx.cfg.backoff_max);
    let wait = exp.mul_f64(0.5 + jitter() / 2.0);
    match retry_after {
        Some(s) if s.is_finite() && s > 0.0 => wait.max(Duration::from_secs_f64(
            s.min(ctx.cfg.backoff_max.as_secs_f64()),
        )),
        _ => wait,
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_failure(
    ctx: &Ctx,
    control: &JobControl,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    attempt: u32,
    failure: Failure,
    latency: Option<Duration>,
) -> Outcome {
    let update = record::failure_update(ctx, exec, plan, prompt, attempt, &failure, latency);
    finish(ctx, control, exec, plan, prompt, &update).await
}

async fn finish(
    ctx: &Ctx,
    control: &JobControl,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    update: &AttemptUpdate,
) -> Outcome {
    let outcome = record::store_final(ctx, control, exec, plan, prompt, update).await;
    if let Outcome::Finished(_) = outcome {
        publish(ctx, exec, plan).await;
    }
    outcome
}

async fn publish(ctx: &Ctx, exec: &ExecutionRecord, plan: &StoredPlan) {
    if !ctx.events.has_subscribers() {
        return;
    }
    if let Ok(Some(e)) = ctx.store.get_execution(&exec.id).await {
        ctx.events.publish(
            &e.job_id,
            EventKind::ExecutionUpdate,
            views::execution(
                &e,
                ctx.cfg.max_total_attempts,
                plan.question(&e.question_id),
            ),
        );
    }
}
