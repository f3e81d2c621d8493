//! Builders shared by the contract tests: jobs, execution grids, attempt updates.

use std::sync::Arc;

use beacon_core::status::{Classification, ExecutionStatus};
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_store::{AttemptUpdate, Inserted, JobRecord, NewExecution, NewJob, Store};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::json;

/// A fixed instant (millisecond precision, like the store) tests count from.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_790_000_000_000)
        .unwrap()
        .trunc_subsecs(3)
}

pub fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

/// A job whose spec body is kept byte-for-byte (odd spacing, key order, unicode).
pub fn job(id: &str) -> NewJob {
    NewJob {
        id: id.to_string(),
        spec_json: format!("{{ \"id\":\"{id}\",  \"z\": 1, \"a\":\"é ✓\" }}"),
        spec_sha256: format!("sha-{id}"),
        benchmark: Some("bias-detection".into()),
        plan_json: json!({"questions": ["q0", "q1", "q2"], "runs": 1}),
        min_success_rate: 0.67,
        min_regions: 0,
        total: 27,
        submitter_key: Some("key-1".into()),
        idempotency_key: None,
        nonce: Some(format!("nonce-{id}")),
        created_at: t0(),
    }
}

/// Every cell of questions × models × regions × runs, in that nesting order.
pub fn grid(
    job_id: &str,
    questions: usize,
    models: usize,
    regions: usize,
    runs: u32,
) -> Vec<NewExecution> {
    let mut out = Vec::with_capacity(questions * models * regions * runs as usize);
    for q in 0..questions {
        for m in 0..models {
            for r in 0..regions {
                for run in 0..runs {
                    let seq = out.len() as u32;
                    out.push(NewExecution {
                        id: format!("{job_id}-e{seq:06}"),
                        seq,
                        question_id: format!("q{q}"),
                        model_id: format!("m{m}"),
                        region: match r {
                            0 => "us-east".to_string(),
                            1 => "eu-west".to_string(),
                            2 => "asia-pacific".to_string(),
                            _ => format!("region-{r}"),
                        },
                        run_index: run,
                    });
                }
            }
        }
    }
    out
}

/// 3 questions × 3 models × 3 regions × 1 run.
pub fn cells27(job_id: &str) -> Vec<NewExecution> {
    grid(job_id, 3, 3, 3, 1)
}

pub fn exec_id(job_id: &str, seq: u32) -> String {
    format!("{job_id}-e{seq:06}")
}

/// Inserts `job(id)` created `offset` seconds after t0, with 27 executions.
pub async fn insert_at(store: &Arc<dyn Store>, id: &str, offset: i64) -> JobRecord {
    let mut j = job(id);
    j.created_at = t0() + secs(offset);
    match store.insert_job(&j, &cells27(id)).await.unwrap() {
        Inserted::Created(r) => r,
        Inserted::Existing(r) => panic!("expected a new job, got existing {}", r.id),
    }
}

pub async fn insert(store: &Arc<dyn Store>, id: &str) -> JobRecord {
    insert_at(store, id, 0).await
}

/// Failures carry a fixed time (with nanoseconds: the JSON keeps them) so that
/// round trips compare equal.
pub fn cancel_failure() -> Failure {
    Failure {
        at: t0() + TimeDelta::nanoseconds(123_456_789),
        ..Failure::new(
            ErrorCode::Cancelled,
            Stage::Scheduler,
            "cancelled by a user",
        )
    }
}

pub fn provider_failure() -> Failure {
    Failure {
        at: t0() + TimeDelta::nanoseconds(987_654_321),
        ..Failure::new(
            ErrorCode::ProviderHttpError,
            Stage::Upstream,
            "HTTP 502 from provider",
        )
        .with_provider("modal-us", "modal")
        .with_http_status(502)
        .with_url("https://user:secret@modal.example/v1/infer?token=x")
    }
}

/// A successful attempt's end.
pub fn completed(execution_id: &str, attempt: u32, at: DateTime<Utc>) -> AttemptUpdate {
    AttemptUpdate {
        execution_id: execution_id.to_string(),
        attempt,
        status: ExecutionStatus::Completed,
        finished_at: at,
        attempt_outcome: "success".into(),
        error_code: None,
        http_status: Some(200),
        provider_id: Some("modal-us".into()),
        latency_ms: Some(1234),
        response: Some("The answer.".into()),
        response_sha256: Some("sha-answer".into()),
        classification: Some(Classification::Substantive),
        output: Some(json!({"response": "The answer.", "provider": "modal-us"})),
        failure: None,
        receipt: Some(json!({"signature": "sig"})),
        next_attempt_at: None,
    }
}

/// A failed attempt's end with `status` (failed, timeout or retrying).
pub fn failed(
    execution_id: &str,
    attempt: u32,
    status: ExecutionStatus,
    at: DateTime<Utc>,
) -> AttemptUpdate {
    AttemptUpdate {
        execution_id: execution_id.to_string(),
        attempt,
        status,
        finished_at: at,
        attempt_outcome: "failed".into(),
        error_code: Some("PROVIDER_HTTP_ERROR".into()),
        http_status: Some(502),
        provider_id: Some("modal-us".into()),
        latency_ms: Some(80),
        // Given on purpose: a retrying execution must not keep them.
        response: Some("partial".into()),
        response_sha256: Some("sha-partial".into()),
        classification: Some(Classification::TechnicalFailure),
        output: Some(json!({"partial": true})),
        failure: Some(provider_failure()),
        receipt: None,
        next_attempt_at: (status == ExecutionStatus::Retrying).then(|| at + secs(2)),
    }
}

/// Claims (as `owner`) and drives one execution through one attempt to `update`.
pub async fn run_one(store: &Arc<dyn Store>, owner: &str, update: AttemptUpdate) {
    let attempt = store
        .start_attempt(&update.execution_id, owner, update.finished_at)
        .await
        .unwrap()
        .expect("start_attempt fenced")
        .number;
    let update = AttemptUpdate { attempt, ..update };
    assert!(
        store.finish_attempt(&update, owner).await.unwrap(),
        "finish_attempt fenced"
    );
}

/// Claims the only claimable job as `owner` with a long lease.
pub async fn claim(store: &Arc<dyn Store>, owner: &str) -> JobRecord {
    store
        .claim_job(owner, std::time::Duration::from_secs(600), t0(), &[])
        .await
        .unwrap()
        .expect("nothing to claim")
}
