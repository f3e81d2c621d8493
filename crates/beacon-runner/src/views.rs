//! JSON shapes the API serves for jobs and executions: the native fields plus the
//! aliases the portal reads (portal-contract.md), so one shape serves both.

use beacon_core::status::{Classification, ExecutionCounts, ExecutionStatus};
use beacon_store::{ExecutionRecord, JobRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::plan::{StoredPlan, StoredQuestion};

/// RFC 3339 with milliseconds and `Z`, as every time in the API.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// How long an execution ran: from its first attempt's start to its end, else the
/// last call's latency.
pub fn duration_ms(e: &ExecutionRecord) -> Option<u64> {
    match (e.started_at, e.completed_at) {
        (Some(a), Some(b)) if b >= a => u64::try_from((b - a).num_milliseconds()).ok(),
        _ => e.latency_ms,
    }
}

/// The job's stage as the portal names it (portal-contract.md 6): `queued`,
/// `spawning` (claimed, no call made yet), `running`, `completing` (nothing left to
/// run, the verdict not yet written), or the final status.
pub fn stage(job: &JobRecord, c: &ExecutionCounts) -> &'static str {
    use beacon_core::status::JobStatus;
    match job.status {
        JobStatus::Queued => "queued",
        JobStatus::Running if c.pending + c.running + c.retrying == 0 => "completing",
        JobStatus::Running if c.running + c.retrying == 0 && c.terminal() == 0 => "spawning",
        JobStatus::Running => "running",
        other => other.as_str(),
    }
}

/// Progress numbers of a job (`progress` of a job, `counts` of a report).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub retrying: u64,
    pub completed: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
    /// Executions in a final status.
    pub done: u64,
    /// `done / total` in percent, one decimal.
    pub percent: f64,
}

pub fn progress_of(c: &ExecutionCounts) -> Progress {
    let total = c.total();
    let done = c.terminal();
    Progress {
        total,
        pending: c.pending,
        running: c.running,
        retrying: c.retrying,
        completed: c.completed,
        failed: c.failed,
        timeout: c.timeout,
        cancelled: c.cancelled,
        done,
        percent: if total == 0 {
            0.0
        } else {
            (done as f64 * 1000.0 / total as f64).round() / 10.0
        },
    }
}

/// [`progress_of`] as JSON.
pub fn progress(c: &ExecutionCounts) -> Value {
    json!(progress_of(c))
}

/// The stored spec, parsed back (it was valid JSON when accepted).
pub fn spec_value(job: &JobRecord) -> Value {
    serde_json::from_str(&job.spec_json).unwrap_or(Value::Null)
}

/// A job as the job routes, events and the WebSocket show it; with the stored spec as
/// `job` on `GET /jobs/{id}`. Its schema in docs/openapi/runner.json is this type's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// `id` again (the portal's name).
    pub job_id: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub benchmark: Benchmark,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Machine code (`below_min_success_rate`, `min_success_rate_unreachable`, ...).
    pub failure_reason: Option<String>,
    /// A sentence for humans (counts and threshold).
    pub failure_message: Option<String>,
    /// The portal's stage: `queued`, `spawning`, `running`, `completing` or the final status.
    pub stage: String,
    pub total_executions: u64,
    pub min_success_rate: f64,
    pub min_regions: u32,
    pub cancel_requested_at: Option<String>,
    pub progress: Progress,
    /// The spec as submitted (`GET /jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Value>,
}

/// The spec's `benchmark.name`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Benchmark {
    pub name: Option<String>,
}

/// A job summary (lists) or, with `spec`, the full record.
pub fn job_view(job: &JobRecord, counts: &ExecutionCounts, with_spec: bool) -> JobView {
    JobView {
        id: job.id.clone(),
        job_id: job.id.clone(),
        status: job.status.as_str().to_string(),
        benchmark: Benchmark {
            name: job.benchmark.clone(),
        },
        created_at: rfc3339(job.created_at),
        started_at: job.started_at.map(rfc3339),
        finished_at: job.finished_at.map(rfc3339),
        failure_reason: job.failure_reason.clone(),
        failure_message: job.failure_message.clone(),
        stage: stage(job, counts).to_string(),
        total_executions: job.total,
        min_success_rate: job.min_success_rate,
        min_regions: job.min_regions,
        cancel_requested_at: job.cancel_requested_at.map(rfc3339),
        progress: progress_of(counts),
        job: with_spec.then(|| spec_value(job)),
    }
}

/// [`job_view`] as JSON.
pub fn job(job: &JobRecord, counts: &ExecutionCounts, with_spec: bool) -> Value {
    json!(job_view(job, counts, with_spec))
}

/// The three-way label of a completed execution's answer, judged with its question
/// (`refusal`, `partial`, `substantive` or `empty_response`, as the report's
/// `answers[].label`); `None` for an execution that has not completed.
pub fn label(e: &ExecutionRecord, question: Option<&StoredQuestion>) -> Option<&'static str> {
    (e.status == ExecutionStatus::Completed).then(|| {
        crate::analysis::label(
            e,
            question
                .map(crate::analysis::question_of)
                .unwrap_or_default(),
        )
    })
}

/// One execution with the fields native clients and the portal read. `attempts_cap`
/// is `scheduler.max_total_attempts`: the portal offers a retry while `retry_count <
/// max_retries`, and the runner accepts one exactly as long. `question` is the
/// execution's question from the job's plan, for `label`; the stored two-way
/// `classification` stays as it was.
pub fn execution(
    e: &ExecutionRecord,
    attempts_cap: u32,
    question: Option<&StoredQuestion>,
) -> Value {
    let response = e.response.clone().unwrap_or_default();
    let classification = e.classification.map(Classification::as_str);
    let mut output = e.output.clone().unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut output {
        map.insert("response".into(), json!(e.response));
    }
    let (error, error_code) = match &e.failure {
        // A cancelled row explains itself, but is not shown as an error.
        Some(f) if e.status != ExecutionStatus::Cancelled => {
            (json!(f.message), json!(f.code.as_str()))
        }
        _ => (Value::Null, Value::Null),
    };
    json!({
        "id": e.id,
        "execution_id": e.id,
        "job_id": e.job_id,
        "question_id": e.question_id,
        "model_id": e.model_id,
        "region": e.region,
        "run_index": e.run_index,
        "status": e.status.as_str(),
        "classification": classification,
        "response_classification": classification,
        "label": label(e, question),
        "is_substantive": e.classification == Some(Classification::Substantive),
        "is_content_refusal": e.classification == Some(Classification::ContentRefusal),
        "response_length": response.chars().count(),
        "provider_id": e.provider_id,
        "created_at": ts(Some(e.created_at)),
        "started_at": ts(e.started_at),
        "completed_at": ts(e.completed_at),
        "next_attempt_at": ts(e.next_attempt_at),
        "latency_ms": e.latency_ms,
        "duration_ms": duration_ms(e),
        // Nanoseconds, the previous runner's Go `time.Duration`, which the portal reads.
        "duration": duration_ms(e).map(|ms| ms.saturating_mul(1_000_000)),
        "exit_code": match e.status {
            ExecutionStatus::Completed => json!(0),
            ExecutionStatus::Failed | ExecutionStatus::Timeout => json!(1),
            _ => Value::Null,
        },
        "attempts": e.attempt_count,
        "retry_count": e.attempt_count.saturating_sub(1),
        "max_retries": attempts_cap.saturating_sub(1),
        "output": output,
        "failure": e.failure,
        "cancellation": if e.status == ExecutionStatus::Cancelled { json!(e.failure) } else { Value::Null },
        "error": error,
        "error_code": error_code,
        "has_receipt": e.receipt.is_some(),
    })
}

/// The details view (`/executions/{id}/details`): the execution plus `output_data`,
/// `model` and `receipt`, which the portal's detail page reads.
pub fn execution_details(
    e: &ExecutionRecord,
    attempts_cap: u32,
    question: Option<&StoredQuestion>,
    attempts: Value,
) -> Value {
    let mut v = execution(e, attempts_cap, question);
    let mut data = v["output"].clone();
    if let Value::Object(map) = &mut data {
        // The portal's detail page reads these paths (portal-contract.md 2.2).
        map.insert(
            "metadata".into(),
            json!({
                "tokens_generated": map.get("tokens_generated").cloned().unwrap_or(Value::Null),
                "execution_time": duration_ms(e).map(|ms| ms as f64 / 1000.0),
                "model": e.model_id,
                "region": e.region,
            }),
        );
        map.insert("hash".into(), json!(e.response_sha256));
    }
    v["output_data"] = data;
    v["model"] = json!(e.model_id);
    v["receipt"] = e.receipt.clone().unwrap_or(Value::Null);
    v["attempt_history"] = attempts;
    v
}

/// Adds `extra`'s members to `base` (both objects; `extra` wins).
pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        b.extend(e);
    }
}

/// The signed receipt as stored, plus the paths the portal's detail page reads
/// (`output.response`, `execution_details.duration` in seconds,
/// `provenance.provider_info.name`, `jobspec_id`; portal-contract.md 2.2). The added
/// members are outside what was signed: `beacon verify` and the transparency log read
/// only the receipt's own fields.
pub fn receipt_for_portal(e: &ExecutionRecord, receipt: Value) -> Value {
    let mut v = receipt;
    if let Value::Object(map) = &mut v {
        let provider = e
            .output
            .as_ref()
            .and_then(|o| o.pointer("/provider_receipt/provenance/provider"))
            .cloned()
            .unwrap_or(Value::Null);
        let seconds = duration_ms(e).map(|ms| ms as f64 / 1000.0);
        let tokens = e
            .output
            .as_ref()
            .and_then(|o| o.get("tokens_generated"))
            .cloned()
            .unwrap_or(Value::Null);
        map.entry("output").or_insert_with(|| {
            json!({"response": e.response, "tokens_generated": tokens,
                   "metadata": {"tokens_generated": tokens, "execution_time": seconds}})
        });
        map.entry("execution_details").or_insert_with(|| {
            json!({"duration": seconds, "started_at": ts(e.started_at),
                   "completed_at": ts(e.completed_at), "region": e.region, "model": e.model_id,
                   "provider_id": e.provider_id})
        });
        map.entry("provenance").or_insert_with(|| {
            json!({"provider_info": {"name": e.provider_id, "region": e.region}, "provider": provider})
        });
        map.entry("jobspec_id").or_insert_with(|| json!(e.job_id));
    }
    v
}

/// Stored plans by job id, each read once: a page of executions from several jobs is
/// shown with each one's question.
#[derive(Default)]
pub struct Plans(std::collections::HashMap<String, Option<StoredPlan>>);

impl Plans {
    /// The plan of `job_id` (`None` when the job or its plan cannot be read).
    pub async fn get(
        &mut self,
        store: &dyn beacon_store::Store,
        job_id: &str,
    ) -> Option<&StoredPlan> {
        if !self.0.contains_key(job_id) {
            let plan = match store.get_job(job_id).await {
                Ok(Some(job)) => plan_of(&job),
                _ => None,
            };
            self.0.insert(job_id.to_string(), plan);
        }
        self.0.get(job_id).and_then(Option::as_ref)
    }

    /// Each execution's view with its question.
    pub async fn views(
        &mut self,
        store: &dyn beacon_store::Store,
        executions: &[ExecutionRecord],
        attempts_cap: u32,
    ) -> Vec<Value> {
        let mut out = Vec::with_capacity(executions.len());
        for e in executions {
            let q = self
                .get(store, &e.job_id)
                .await
                .and_then(|p| p.question(&e.question_id));
            out.push(execution(e, attempts_cap, q));
        }
        out
    }
}

/// A job's stored plan, if it reads.
pub fn plan_of(job: &JobRecord) -> Option<StoredPlan> {
    serde_json::from_value(job.plan_json.clone()).ok()
}
