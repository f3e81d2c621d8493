//! Turning one attempt's result into the execution's stored state: an answer is
//! checked (provenance, region, size) before it may count as completed and be signed;
//! answers and failures become `AttemptUpdate`s with their receipts; and the final
//! write survives database outages (held and retried) and refusals (recorded as a
//! `STORE_WRITE_FAILED` failure, so the execution ends instead of being bought again).

use std::time::Duration;

use beacon_core::receipt::sha256_hex;
use beacon_core::status::ExecutionStatus;
use beacon_core::wire::InferenceResponse;
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_store::{AttemptUpdate, ExecutionRecord};
use chrono::Utc;
use serde_json::json;

use super::execution::Outcome;
use super::group;
use super::writes::{self, Written};
use super::{Ctx, JobControl};
use crate::classify::classify;
use crate::plan::StoredPlan;
use crate::receipts::{self, ReceiptInput};

/// Longest provider name or region accepted in an answer's provenance.
const MAX_PROVENANCE_CHARS: usize = 128;

/// An answer may be stored as `completed` only when it says which provider in which
/// region served it (the region asked for: the runner never accepts fallback), carries
/// its text, and the text fits what one execution may store. Anything else is a
/// failure of the router's contract, not retried: the same router would answer the
/// same way, and each try may be a paid call.
pub fn check_answer(
    answer: &InferenceResponse,
    exec: &ExecutionRecord,
    max_answer_bytes: u64,
) -> Result<(), Failure> {
    let bad = |msg: String| {
        Failure::new(ErrorCode::RouterBadResponse, Stage::Router, msg)
            .with_region(&exec.region)
            .with_model(&exec.model_id)
            .with_transient(false)
    };
    fn sane(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| {
            !s.is_empty()
                && s.chars().count() <= MAX_PROVENANCE_CHARS
                && !s.chars().any(char::is_control)
        })
    }
    let Some(provider) = sane(&answer.provider_used) else {
        return Err(bad(format!(
            "the router reported success without naming the provider that served it (provider_used = {:?})",
            answer.provider_used
        )));
    };
    let kind = answer.metadata.provider_type.as_deref().unwrap_or("");
    let Some(served) = sane(&answer.metadata.region) else {
        return Err(bad(format!(
            "the router reported success from {provider} without the region that served it (metadata.region = {:?})",
            answer.metadata.region
        ))
        .with_provider(provider, kind));
    };
    if served != exec.region {
        return Err(Failure::new(
            ErrorCode::Other("REGION_MISMATCH".into()),
            Stage::Router,
            format!(
                "asked for {} but the answer came from {served}",
                exec.region
            ),
        )
        .with_provider(provider, kind)
        .with_region(&exec.region)
        .with_transient(false));
    }
    let Some(text) = &answer.response else {
        return Err(bad(format!(
            "the router reported success from {provider} without a response field"
        ))
        .with_provider(provider, kind));
    };
    if text.len() as u64 > max_answer_bytes {
        return Err(Failure::new(
            ErrorCode::RouterResponseTooLarge,
            Stage::Router,
            format!(
                "the answer of {provider} is {} bytes, more than limits.max_answer_bytes ({max_answer_bytes})",
                text.len()
            ),
        )
        .with_provider(provider, kind)
        .with_region(&exec.region)
        .with_transient(false));
    }
    Ok(())
}

/// The stored state of a completed execution: the checked answer, its provenance and
/// its signed receipt.
pub fn answer_update(
    ctx: &Ctx,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    attempt: u32,
    answer: InferenceResponse,
    latency: Duration,
) -> AttemptUpdate {
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
    AttemptUpdate {
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
    }
}

/// An attempt that failed, with the execution's new `status` (`retrying` needs
/// `next_attempt_at`).
pub fn failed_update(
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

/// The terminal state of a failed execution (`timeout` for timeouts), with a receipt.
pub fn failure_update(
    ctx: &Ctx,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    attempt: u32,
    failure: &Failure,
    latency: Option<Duration>,
) -> AttemptUpdate {
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
    AttemptUpdate {
        status,
        attempt_outcome: if status == ExecutionStatus::Timeout {
            "timeout".into()
        } else {
            "failed".into()
        },
        classification: classify(status, None),
        receipt,
        ..failed_update(exec, attempt, failure, latency.unwrap_or_default())
    }
}

/// Stores a terminal update. An outage is waited out (the paid answer is held); a
/// refusal of the data is replaced by a `STORE_WRITE_FAILED` failure that says why,
/// so the execution ends here instead of being dispatched and bought again.
pub async fn store_final(
    ctx: &Ctx,
    control: &JobControl,
    exec: &ExecutionRecord,
    plan: &StoredPlan,
    prompt: &str,
    update: &AttemptUpdate,
) -> Outcome {
    let refusal = match write(ctx, control, update).await {
        Ok(outcome) => return outcome,
        Err(e) => e,
    };
    let failure = Failure::new(
        ErrorCode::StoreWriteFailed,
        Stage::Scheduler,
        format!(
            "the database refused to store this execution's {} outcome: {refusal}",
            update.status
        ),
    )
    .with_transient(false);
    let mut fallback = failure_update(
        ctx,
        exec,
        plan,
        prompt,
        update.attempt,
        &failure,
        update.latency_ms.map(Duration::from_millis),
    );
    // Keep who served it, unless that very value may be what the database refused.
    fallback.provider_id = update
        .provider_id
        .clone()
        .filter(|p| !p.chars().any(char::is_control));
    match write(ctx, control, &fallback).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // Even the failure cannot be stored: leave the row as it is. The job keeps
            // its lease (see job.rs), and `max_total_attempts` bounds what any later
            // owner may still spend on it.
            tracing::error!(execution = %exec.id, error = %e, "cannot store even the failure of this execution");
            Outcome::Unstorable
        }
    }
}

/// One fenced write of an attempt's end, retried through outages. `Err` only for a
/// refusal of the data.
pub async fn write(
    ctx: &Ctx,
    control: &JobControl,
    update: &AttemptUpdate,
) -> Result<Outcome, beacon_store::StoreError> {
    let written = writes::retrying(&ctx.writes, &control.token, "attempt end", || {
        // Urgent in the job's last round (nothing waits for a call slot, so no call
        // follows that this write could delay, and the verdict waits for it) and once
        // nothing is in flight (no other answer is coming to join the group).
        let urgent = control.waiting_for_slots() == 0 || control.calls_in_flight() == 0;
        ctx.finishes.submit(update.clone(), urgent, |updates| {
            group::finish_group(ctx.store.as_ref(), &ctx.instance_id, updates)
        })
    })
    .await;
    match written {
        Written::Done(true) if update.status.is_terminal() => {
            ctx.metrics.inc(
                "beacon_runner_executions_finished_total",
                vec![("status", update.status.as_str().to_string())],
            );
            Ok(Outcome::Finished(update.status))
        }
        Written::Done(true) => Ok(Outcome::Retrying),
        Written::Done(false) => Ok(Outcome::Fenced),
        Written::Abandoned => Ok(Outcome::Interrupted),
        Written::Refused(e) => Err(e),
    }
}
