//! Building and signing an execution's receipt with the runner's key.

use beacon_core::receipt::{RECEIPT_SCHEMA, Receipt, ReceiptRequest, sha256_hex};
use beacon_store::ExecutionRecord;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde_json::Value;

/// Everything a receipt says about one terminal execution.
pub struct ReceiptInput<'a> {
    pub execution: &'a ExecutionRecord,
    pub prompt: &'a str,
    pub temperature: f64,
    pub max_tokens: u32,
    pub status: &'a str,
    pub provider_id: Option<&'a str>,
    pub provider_region_label: Option<&'a str>,
    pub response: Option<&'a str>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: DateTime<Utc>,
    pub trace_id: &'a str,
    pub provider_receipt: Option<Value>,
}

/// The signed receipt as JSON, or `None` if signing failed (logged; the execution is
/// still stored, and `beacon verify` reports the missing receipt).
pub fn signed(key: &SigningKey, r: ReceiptInput<'_>) -> Option<Value> {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut receipt = Receipt {
        schema: RECEIPT_SCHEMA.into(),
        job_id: r.execution.job_id.clone(),
        execution_id: r.execution.id.clone(),
        question_id: r.execution.question_id.clone(),
        model_id: r.execution.model_id.clone(),
        region: r.execution.region.clone(),
        run_index: r.execution.run_index,
        provider_id: r.provider_id.map(str::to_string),
        provider_region_label: r.provider_region_label.map(str::to_string),
        request: ReceiptRequest {
            prompt_sha256: sha256_hex(r.prompt),
            temperature: r.temperature,
            max_tokens: r.max_tokens,
        },
        response_sha256: r.response.map(sha256_hex),
        status: r.status.to_string(),
        started_at: r.started_at.map(fmt),
        completed_at: Some(fmt(r.completed_at)),
        trace_id: Some(r.trace_id.to_string()),
        provider_receipt: r.provider_receipt,
        public_key: None,
        signature: None,
    };
    match receipt.sign(key).map(|()| serde_json::to_value(&receipt)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "receipt serialisation failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "receipt signing failed");
            None
        }
    }
}
