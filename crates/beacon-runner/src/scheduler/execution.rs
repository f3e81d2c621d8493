//! One execution's life on this instance: wait for the breaker and a call slot, start
//! an attempt (fenced by the lease), call the router with the attempt id as
//! `Idempotency-Key`, and store the answer or the failure; transient failures back off
//! and try again up to `max_attempts`. A cancelled token aborts the call in flight.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::receipt::sha256_hex;
use beacon_core::status::ExecutionStatus;
use beacon_core::wire::{InferenceRequest, InferenceResponse};
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_store::{AttemptUpdate, ExecutionRecord};
use chrono::Utc;
use serde_json::json;
use tokio::time::Instant;

use super::{Ctx, JobControl};
use crate::classify::classify;
use crate::events::EventKind;
use crate::plan::StoredPlan;
use crate::receipts::{self, ReceiptInput};
use crate::router::{CallResult, traceparent};
use crate::views;

/// How an execution task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Reached a terminal status and stored it.
    Finished(ExecutionStatus),
    /// Stopped by the job's token (cancel, early stop, deadline, shutdown); the job
    /// decides what the row becomes.
    Interrupted,
    /// The store refused the write: lease lost or the row was already terminal.
    Fenced,
}

pub async fn run(
    ctx: Arc<Ctx>,
    exec: ExecutionRecord,
    plan: Arc<StoredPlan>,
    control: Arc<JobControl>,
) -> Outcome {
    let Some(question) = plan.question(&exec.question_id) else {
        let f = Failure::new(
            ErrorCode::Other("QUESTION_MISSING".into()),
            Stage::Scheduler,
            format!("question {} is not in the job's plan", exec.question_id),
        );
        return finish_failure(&ctx, &exec, &plan, 0, f, None, "").await;
    };
    let token = &control.token;
    let mut tries = 0u32;
    loop {
        // A router behind an open breaker gets no attempts; the execution just waits.
        while let crate::router::BreakerState::Open = ctx.router.breaker.state() {
            tokio::select! {
                _ = token.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        // The attempt is recorded before waiting for a call slot, so the write is
        // done by the time a slot frees up (the orchestration benchmark's finding).
        let attempt = match ctx
            .store
            .start_attempt(&exec.id, &ctx.instance_id, Utc::now())
            .await
        {
            Ok(Some(n)) => n,
            Ok(None) => return Outcome::Fenced,
            Err(e) => {
                tracing::error!(execution = %exec.id, error = %e, "starting an attempt failed; retrying");
                tokio::select! {
                    _ = token.cancelled() => return Outcome::Interrupted,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let permits = tokio::select! {
            _ = token.cancelled() => return Outcome::Interrupted,
            p = ctx.limits.acquire(&control.calls, &exec.region) => p,
        };
        if token.is_cancelled() {
            return Outcome::Interrupted;
        }
        publish(&ctx, &exec.id).await;
        let request = InferenceRequest {
            model: exec.model_id.clone(),
            prompt: question.text.clone(),
            temperature: plan.temperature,
            max_tokens: plan.max_tokens,
            region_preference: Some(exec.region.clone()),
            allow_region_fallback: false,
            cost_priority: true,
            trace_id: Some(plan.trace_id.clone()),
            timeout_ms: None,
        };
        let timeout = plan.provider_timeout().min(ctx.router_timeout);
        let attempt_id = format!("{}:{attempt}", exec.id);
        let parent = traceparent(&plan.trace_id);
        let started = Instant::now();
        let result = {
            let _call = control.call();
            tokio::select! {
                biased;
                _ = token.cancelled() => None,
                r = ctx.router.infer(&request, &attempt_id, &parent, timeout) => Some(r),
            }
        };
        drop(permits);
        let latency = started.elapsed();
        ctx.metrics.observe(
            "beacon_runner_router_call_seconds",
            vec![("region", exec.region.clone())],
            latency,
        );
        let Some(result) = result else {
            return Outcome::Interrupted;
        };
        let failure = match result {
            CallResult::Answer(answer) => match region_violation(&answer, &exec) {
                None => {
                    return finish_answer(
                        &ctx,
                        &exec,
                        &plan,
                        &question.text,
                        attempt,
                        answer,
                        latency,
                    )
                    .await;
                }
                Some(f) => f,
            },
            CallResult::Failed(f) => f,
            CallResult::BreakerOpen(_) => Failure::new(
                ErrorCode::RouterUnreachable,
                Stage::Router,
                "the router circuit breaker is open",
            )
            .with_transient(true),
        };
        tries += 1;
        ctx.metrics.inc(
            "beacon_runner_attempt_failures_total",
            vec![("code", failure.code.to_string())],
        );
        if failure.transient && tries < ctx.cfg.max_attempts {
            let wait = backoff(&ctx, tries, failure.retry_after);
            let update = AttemptUpdate {
                status: ExecutionStatus::Retrying,
                next_attempt_at: Some(
                    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                ),
                ..failed_update(&exec, attempt, &failure, latency)
            };
            match ctx.store.finish_attempt(&update, &ctx.instance_id).await {
                Ok(true) => publish(&ctx, &exec.id).await,
                Ok(false) => return Outcome::Fenced,
                Err(e) => {
                    tracing::error!(execution = %exec.id, error = %e, "recording a retry failed")
                }
            }
            tokio::select! {
                _ = token.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(wait) => continue,
            }
        }
        return finish_failure(
            &ctx,
            &exec,
            &plan,
            attempt,
            failure,
            Some(latency),
            &question.text,
        )
        .await;
    }
}

/// An answer must come from the region asked for; the runner never accepts fallback.
fn region_violation(answer: &InferenceResponse, exec: &ExecutionRecord) -> Option<Failure> {
    let served = answer.metadata.region.as_deref()?;
    (served != exec.region).then(|| {
        Failure::new(
            ErrorCode::Other("REGION_MISMATCH".into()),
            Stage::Router,
            format!(
                "asked for {} but the answer came from {served}",
                exec.region
            ),
        )
        .with_provider(
            answer.provider_used.as_deref().unwrap_or(""),
            answer.metadata.provider_type.as_deref().unwrap_or(""),
        )
        .with_transient(false)
    })
}

/// Exponential backoff with jitter between `backoff_base` and `backoff_max`, at least
/// what the peer asked for.
fn backoff(ctx: &Ctx, tries: u32, retry_after: Option<f64>) -> Duration {
    let exp = ctx
        .cfg
        .backoff_base
        .saturating_mul(1u32 << (tries - 1).min(16))
        .min(ctx.cfg.backoff_max);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = 0.5 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 2.0;
    let wait = exp.mul_f64(jitter);
    match retry_after {
        Some(s) if s.is_finite() && s > 0.0 => wait.max(Duration::from_secs_f64(
            s.min(ctx.cfg.backoff_max.as_secs_f64()),
        )),
        _ => wait,
    }
}

fn failed_update(
    exec: &ExecutionRecord,
    attempt: u32,
    f: &Failure,
    latency: Duration,
) -> AttemptUpdate {
    AttemptUpdate {
        execution_id: exec.id.clone(),
        attempt,
        status: ExecutionStatus::Failed,
        finished_at: Utc::now(),
        attempt_outcome: "failed".into(),
        error_code: Some(f.code.to_string()),
        http_status: f.http_status,
        provider_id: f.provider.clone(),
        latency_ms: Some(latency.as_millis() as u64),
        response: None,
        response_sha256: None,
        classification: None,
        output: None,
        failure: Some(f.clone()),
        receipt: None,
        next_attempt_at: None,
    }
}

async fn finish_answer(
    ctx: &Ctx,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    attempt: u32,
    answer: InferenceResponse,
    latency: Duration,
) -> Outcome {
    let text = answer.response.clone().unwrap_or_default();
    let now = Utc::now();
    let status = ExecutionStatus::Completed;
    let meta = &answer.metadata;
    // The answer text lives in the `response` column only (one copy, the one the
    // receipt hashes); `output` holds its provenance.
    let output = json!({
        "provider_id": answer.provider_used,
        "provider_type": meta.provider_type,
        "region": meta.region,
        "provider_region_label": meta.provider_region_label,
        "model": meta.model,
        "tokens_generated": meta.tokens_generated,
        "inference_time": answer.inference_time,
        "cost_estimate": answer.cost_estimate,
        "warnings": answer.warnings,
        "router_attempts": meta.attempts,
        "trace_id": meta.trace_id,
        "provider_receipt": meta.receipt,
    });
    let receipt = receipts::signed(
        &ctx.signing_key,
        ReceiptInput {
            execution: exec,
            prompt,
            temperature: plan.temperature,
            max_tokens: plan.max_tokens,
            status: status.as_str(),
            provider_id: answer.provider_used.as_deref(),
            provider_region_label: meta.provider_region_label.as_deref(),
            response: Some(&text),
            started_at: exec.started_at.or(Some(now)),
            completed_at: now,
            trace_id: &plan.trace_id,
            provider_receipt: meta.receipt.clone(),
        },
    );
    let update = AttemptUpdate {
        execution_id: exec.id.clone(),
        attempt,
        status,
        finished_at: now,
        attempt_outcome: if text.trim().is_empty() {
            "empty".into()
        } else {
            "success".into()
        },
        error_code: None,
        http_status: Some(200),
        provider_id: answer.provider_used.clone(),
        latency_ms: Some(latency.as_millis() as u64),
        response_sha256: Some(sha256_hex(&text)),
        classification: classify(status, Some(&text)),
        response: Some(text),
        output: Some(output),
        failure: None,
        receipt,
        next_attempt_at: None,
    };
    store_final(ctx, exec, &update).await
}

async fn finish_failure(
    ctx: &Ctx,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    attempt: u32,
    failure: Failure,
    latency: Option<Duration>,
    prompt: &str,
) -> Outcome {
    let status = match failure.code {
        ErrorCode::ProviderTimeout | ErrorCode::RouterTimeout | ErrorCode::JobTimeout => {
            ExecutionStatus::Timeout
        }
        _ => ExecutionStatus::Failed,
    };
    let now = Utc::now();
    let receipt = receipts::signed(
        &ctx.signing_key,
        ReceiptInput {
            execution: exec,
            prompt,
            temperature: plan.temperature,
            max_tokens: plan.max_tokens,
            status: status.as_str(),
            provider_id: failure.provider.as_deref(),
            provider_region_label: None,
            response: None,
            started_at: exec.started_at.or(Some(now)),
            completed_at: now,
            trace_id: &plan.trace_id,
            provider_receipt: None,
        },
    );
    let update = AttemptUpdate {
        status,
        attempt_outcome: if status == ExecutionStatus::Timeout {
            "timeout".into()
        } else {
            "failed".into()
        },
        classification: classify(status, None),
        receipt,
        ..failed_update(exec, attempt, &failure, latency.unwrap_or_default())
    };
    store_final(ctx, exec, &update).await
}

async fn store_final(ctx: &Ctx, exec: &ExecutionRecord, update: &AttemptUpdate) -> Outcome {
    match ctx.store.finish_attempt(update, &ctx.instance_id).await {
        Ok(true) => {
            ctx.metrics.inc(
                "beacon_runner_executions_finished_total",
                vec![("status", update.status.as_str().to_string())],
            );
            publish(ctx, &exec.id).await;
            Outcome::Finished(update.status)
        }
        Ok(false) => Outcome::Fenced,
        Err(e) => {
            tracing::error!(execution = %exec.id, error = %e, "storing the outcome failed");
            Outcome::Fenced
        }
    }
}

async fn publish(ctx: &Ctx, execution_id: &str) {
    if !ctx.events.has_subscribers() {
        return;
    }
    if let Ok(Some(e)) = ctx.store.get_execution(execution_id).await {
        ctx.events.publish(
            &e.job_id,
            EventKind::ExecutionUpdate,
            views::execution(&e, ctx.cfg.max_attempts),
        );
    }
}
