//! The Modal web-endpoint contract: parsing `POST /` bodies (with Modal's own validation
//! answers) and rendering answers, runtime failures and malformed bodies.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::answer::estimate_tokens;
use crate::engine::Engine;
use crate::padded::{answer_field, filler_tokens};
use crate::plan::FaultKind;
use crate::reply::{CallRequest, Refusal, Reply, Served, runtime_error_message, secs};
use crate::stats::{Outcome, Route};

/// Defaults of the replaced Modal functions when a key is absent.
const DEFAULT_TEMPERATURE: f64 = 0.7;
const DEFAULT_MAX_TOKENS: u32 = 512;
const MAX_MAX_TOKENS: u64 = 32_768;

/// Parses a Modal request. Refusals, in Modal's shapes:
/// - body not JSON / not an object: 422 `{"detail": [...]}` (what the FastAPI layer of a
///   Modal web endpoint answers), outcome `validation_error`;
/// - missing, empty or non-string prompt: 200 `{"status":"error","error":"Prompt is
///   required"}`, outcome `validation_error`;
/// - model not served: 200 `{"status":"error","error":"Unknown model: x"}`, outcome
///   `unknown_model`. A missing model means the first configured one.
pub(crate) fn parse(engine: &Engine, body: &[u8]) -> Result<CallRequest, Refusal> {
    let detail = |kind: &str, msg: &str| Refusal {
        outcome: Outcome::ValidationError,
        reply: Reply::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"detail": [{"type": kind, "loc": ["body"], "msg": msg}]}),
        ),
        model: String::new(),
        prompt: String::new(),
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|_| detail("json_invalid", "JSON decode error"))?;
    let Some(obj) = value.as_object() else {
        return Err(detail("dict_type", "Input should be a valid dictionary"));
    };
    let model_name = match obj.get("model") {
        None | Some(Value::Null) => engine
            .models()
            .first()
            .map(|m| m.to_string())
            .unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let prompt = obj
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if prompt.is_empty() {
        return Err(Refusal {
            outcome: Outcome::ValidationError,
            reply: status_error("Prompt is required"),
            model: model_name,
            prompt: String::new(),
        });
    }
    let Some(model) = engine.model(&model_name) else {
        return Err(Refusal {
            outcome: Outcome::UnknownModel,
            reply: status_error(&format!("Unknown model: {model_name}")),
            model: model_name,
            prompt: prompt.to_string(),
        });
    };
    Ok(CallRequest {
        route: Route::Modal,
        model,
        prompt: prompt.to_string(),
        system_prompt: obj
            .get("system_prompt")
            .and_then(Value::as_str)
            .map(str::to_string),
        temperature: obj
            .get("temperature")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
            .unwrap_or(DEFAULT_TEMPERATURE),
        max_tokens: obj
            .get("max_tokens")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .map_or(DEFAULT_MAX_TOKENS, |n| n.min(MAX_MAX_TOKENS) as u32),
        traceparent: None,
    })
}

/// Modal's validation-error shape: HTTP 200 and no `success` key.
fn status_error(message: &str) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({"status": "error", "error": message}),
    )
}

/// Renders a served call. `fault` is one of none, empty, error, malformed (hangs and
/// drops never get here).
pub(crate) fn render(s: &Served<'_>) -> (Reply, Outcome) {
    match s.plan.fault {
        FaultKind::Error if s.plan.crash => (
            Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Outcome::Http500,
        ),
        FaultKind::Error => (
            Reply::json(
                StatusCode::OK,
                &json!({"success": false, "error": runtime_error_message(s.plan.pick)}),
            ),
            Outcome::ReportedFailure,
        ),
        FaultKind::Malformed => (Reply::truncated_json(&success_body(s)), Outcome::Malformed),
        _ => {
            let outcome = if s.text.is_empty() {
                Outcome::Empty
            } else {
                Outcome::Ok
            };
            let reply = if s.pad > 0 {
                Reply::padded(StatusCode::OK, &success_body(s), s.text, s.pad)
            } else {
                Reply::json(StatusCode::OK, &success_body(s))
            };
            (reply, outcome)
        }
    }
}

/// The success JSON; a padded answer's text carries the marker where filler goes.
fn success_body(s: &Served<'_>) -> Value {
    let e = s.engine;
    let tokens = estimate_tokens(s.text).saturating_add(filler_tokens(s.pad));
    let response = answer_field(s);
    json!({
        "success": true,
        "response": response,
        "model": &*s.req.model,
        "inference_time": secs(s.inference_secs),
        "region": e.label,
        "tokens_generated": tokens,
        // No GPU is involved; the key is kept because clients read it.
        "gpu_memory_used": 0.0,
        "receipt": {
            "schema_version": "v0.1.0",
            "execution_details": {
                "provider_id": e.provider_id,
                "region": e.label,
                "model": &*s.req.model,
                "started_at": s.started_at.to_rfc3339(),
                "completed_at": s.completed_at.to_rfc3339(),
                "duration": secs(s.duration_secs),
            },
            "output": {
                "response": response,
                "prompt": s.req.prompt,
                "system_prompt": s.req.system_prompt,
                "tokens_generated": tokens,
                "metadata": {
                    "simulated": true,
                    "call_id": s.call_id,
                    "canonical_region": e.region.as_str(),
                    "temperature": s.req.temperature,
                    "max_tokens": s.req.max_tokens,
                    "truncated": s.truncated,
                    "occurrence": s.occurrence,
                    "variant": s.plan.variant,
                },
            },
            "provenance": {
                "provider": "beacon-sim",
                "architecture": "simulated (scripted answers, no model weights, no GPU)",
                "model_registry": "beacon-sim",
            },
        },
    })
}
