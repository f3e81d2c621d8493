//! The router's wire types: `POST /inference` request and response, the candidate list
//! of a `NO_HEALTHY_PROVIDER` answer, and the `GET /providers` entry. Field names are
//! those of the router this one replaces, so existing clients keep working.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::{ErrorCode, Failure};

/// The warning attached to a successful call whose answer was empty.
pub const EMPTY_MODEL_RESPONSE: &str = "EMPTY_MODEL_RESPONSE";

fn default_temperature() -> f64 {
    0.1
}
fn default_max_tokens() -> u32 {
    500
}
fn default_true() -> bool {
    true
}

/// `POST /inference` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    pub model: String,
    pub prompt: String,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Canonical region or alias; the router resolves it.
    #[serde(default)]
    pub region_preference: Option<String>,
    /// Off unless asked: an answer for a region must come from that region.
    #[serde(default)]
    pub allow_region_fallback: bool,
    #[serde(default = "default_true")]
    pub cost_priority: bool,
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The caller's whole budget for this request, in milliseconds; the router fails
    /// over only within it. Absent: the longest `request_timeout` of the candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl InferenceRequest {
    pub fn new(model: &str, prompt: &str, region: &str) -> InferenceRequest {
        InferenceRequest {
            model: model.to_string(),
            prompt: prompt.to_string(),
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
            region_preference: Some(region.to_string()),
            allow_region_fallback: false,
            cost_priority: true,
            trace_id: None,
            timeout_ms: None,
        }
    }
}

/// Provenance of an answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceMetadata {
    #[serde(default)]
    pub provider_type: Option<String>,
    /// The configured canonical region of the provider that answered.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// What the provider calls its own region (Modal's APAC app says `asia-southeast`).
    #[serde(default)]
    pub provider_region_label: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub tokens_generated: Option<u64>,
    /// Prompt tokens, when the provider reports them (OpenAI-compatible ones do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// The provider's own receipt, verbatim.
    #[serde(default)]
    pub receipt: Option<Value>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// One provider considered for a request, and why it was not used.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub provider: String,
    pub state: ProviderState,
    pub reason: String,
    /// RFC 3339 time of the last probe, if any.
    #[serde(default)]
    pub last_probe_at: Option<String>,
    #[serde(default)]
    pub last_failure: Option<Failure>,
    /// RFC 3339 end of the provider's ejection, when it is ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejected_until: Option<String>,
}

/// `POST /inference` answer: the same shape on success and failure.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    pub success: bool,
    #[serde(default)]
    pub response: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub provider_used: Option<String>,
    #[serde(default)]
    pub inference_time: Option<f64>,
    #[serde(default)]
    pub cost_estimate: Option<f64>,
    #[serde(default)]
    pub metadata: InferenceMetadata,
    /// Filled on `NO_HEALTHY_PROVIDER`: every provider considered and why it was rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

impl InferenceResponse {
    /// A failed answer carrying `failure`; `error` and `error_code` mirror it for
    /// clients of the original router.
    pub fn failed(failure: Failure) -> InferenceResponse {
        InferenceResponse {
            success: false,
            response: None,
            error: Some(failure.message.clone()),
            error_code: Some(failure.code.clone()),
            provider_used: failure.provider.clone(),
            metadata: InferenceMetadata {
                provider_type: failure.provider_type.clone(),
                region: failure.region.clone(),
                model: failure.model.clone(),
                ..Default::default()
            },
            failure: Some(failure),
            warnings: Vec::new(),
            inference_time: None,
            cost_estimate: None,
            candidates: Vec::new(),
        }
    }

    /// True when the call succeeded with an empty answer: not a failure.
    pub fn is_empty_answer(&self) -> bool {
        self.success && self.response.as_deref().is_none_or(|r| r.trim().is_empty())
    }
}

/// A provider's health state (router.md "Health model").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    /// Never observed: routable, but never reported healthy.
    Unknown,
    Healthy,
    /// Ejected until a time after repeated provider-side failures.
    Unhealthy,
    /// Taken out of rotation by an operator.
    Draining,
}

impl ProviderState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Unknown => "unknown",
            ProviderState::Healthy => "healthy",
            ProviderState::Unhealthy => "unhealthy",
            ProviderState::Draining => "draining",
        }
    }
}

/// One entry of `GET /providers`. Endpoint URLs are deliberately absent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub region: String,
    pub healthy: bool,
    pub state: ProviderState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub cost_per_second: f64,
    /// Seconds (EWMA).
    #[serde(default)]
    pub avg_latency: f64,
    #[serde(default)]
    pub p95_latency: f64,
    #[serde(default)]
    pub success_rate: f64,
    #[serde(default)]
    pub in_flight: u32,
    #[serde(default)]
    pub max_concurrency: u32,
    /// Unix seconds of the last probe; 0 = never.
    #[serde(default)]
    pub last_health_check: i64,
    #[serde(default)]
    pub probe_age_seconds: Option<f64>,
    #[serde(default)]
    pub stale: bool,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub last_failure: Option<Failure>,
}

/// `GET /providers` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvidersResponse {
    pub providers: Vec<ProviderEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Stage;
    use serde_json::json;

    #[test]
    fn request_defaults_match_the_original_router() {
        let r: InferenceRequest =
            serde_json::from_value(json!({"model": "m", "prompt": "p"})).unwrap();
        assert_eq!(
            (
                r.temperature,
                r.max_tokens,
                r.allow_region_fallback,
                r.cost_priority
            ),
            (0.1, 500, false, true)
        );
        assert!(serde_json::from_value::<InferenceRequest>(json!({"model": "m"})).is_err());
    }

    #[test]
    fn failed_answer_mirrors_the_failure_for_old_clients() {
        let f = Failure::new(
            ErrorCode::NoHealthyProvider,
            Stage::Routing,
            "no healthy provider in eu-west",
        );
        let v = serde_json::to_value(InferenceResponse::failed(f)).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error_code"], "NO_HEALTHY_PROVIDER");
        assert_eq!(v["failure"]["code"], "NO_HEALTHY_PROVIDER");
        assert_eq!(v["error"], "no healthy provider in eu-west");
        assert!(v.get("candidates").is_none());
    }

    #[test]
    fn empty_success_is_flagged_not_failed() {
        let r: InferenceResponse = serde_json::from_value(
            json!({"success": true, "response": "", "warnings": [EMPTY_MODEL_RESPONSE]}),
        )
        .unwrap();
        assert!(r.is_empty_answer() && r.success);
    }

    #[test]
    fn provider_entry_uses_the_original_field_names() {
        let e: ProviderEntry = serde_json::from_value(json!({
            "name": "modal-eu-west", "type": "modal", "region": "eu-west", "healthy": false,
            "state": "unknown", "last_health_check": 0}))
        .unwrap();
        assert_eq!(e.state, ProviderState::Unknown);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "modal");
        assert!(v.get("url").is_none());
    }
}
