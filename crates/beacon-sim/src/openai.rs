//! The OpenAI chat-completions contract: parsing `POST /v1/chat/completions` bodies (with
//! OpenAI-shaped errors) and rendering completions, failures and malformed bodies.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::answer::estimate_tokens;
use crate::engine::Engine;
use crate::padded::{answer_field, filler_tokens};
use crate::plan::FaultKind;
use crate::reply::{CallRequest, Refusal, Reply, Served, runtime_error_message};
use crate::stats::{Outcome, Route};

const DEFAULT_TEMPERATURE: f64 = 1.0;
const DEFAULT_MAX_TOKENS: u32 = 512;
const MAX_MAX_TOKENS: u64 = 32_768;

/// `{"error": {message, type, param, code}}`, the shape OpenAI-compatible servers use.
pub(crate) fn error_reply(
    status: StatusCode,
    kind: &str,
    code: &str,
    param: Option<&str>,
    message: &str,
) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

fn invalid(
    code: &str,
    param: Option<&str>,
    message: &str,
    model: String,
    prompt: String,
) -> Refusal {
    Refusal {
        outcome: Outcome::ValidationError,
        reply: error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            param,
            message,
        ),
        model,
        prompt,
    }
}

/// Text of a message `content`: a string, or the text parts of a content array.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Parses a chat-completions request; the prompt is the last user message. Refusals:
/// 400 `invalid_request_error` (outcome `validation_error`) for bad JSON, a missing model
/// or no user text; 404 `model_not_found` (outcome `unknown_model`).
pub(crate) fn parse(engine: &Engine, body: &[u8]) -> Result<CallRequest, Refusal> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid(
            "invalid_json",
            None,
            "The request body is not valid JSON.",
            String::new(),
            String::new(),
        ));
    };
    let Some(obj) = value.as_object() else {
        return Err(invalid(
            "invalid_request",
            None,
            "The request body must be a JSON object.",
            String::new(),
            String::new(),
        ));
    };
    let Some(model_name) = obj.get("model").and_then(Value::as_str).map(str::to_string) else {
        return Err(invalid(
            "missing_model",
            Some("model"),
            "You must provide a model parameter.",
            String::new(),
            String::new(),
        ));
    };
    let Some(messages) = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return Err(invalid(
            "invalid_messages",
            Some("messages"),
            "'messages' must be a non-empty array.",
            model_name,
            String::new(),
        ));
    };
    let role_text = |role: &str, last: bool| {
        let mut it = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some(role));
        let msg = if last { it.next_back() } else { it.next() };
        msg.and_then(|m| content_text(m.get("content")))
    };
    let prompt = role_text("user", true).filter(|p| !p.is_empty());
    let Some(prompt) = prompt else {
        return Err(invalid(
            "invalid_messages",
            Some("messages"),
            "The messages contain no user message with text content.",
            model_name,
            String::new(),
        ));
    };
    let Some(model) = engine.model(&model_name) else {
        return Err(Refusal {
            outcome: Outcome::UnknownModel,
            reply: error_reply(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                Some("model"),
                &format!(
                    "The model `{model_name}` does not exist or you do not have access to it."
                ),
            ),
            model: model_name,
            prompt,
        });
    };
    let max_tokens = obj
        .get("max_completion_tokens")
        .or_else(|| obj.get("max_tokens"))
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map_or(DEFAULT_MAX_TOKENS, |n| n.min(MAX_MAX_TOKENS) as u32);
    Ok(CallRequest {
        route: Route::Openai,
        model,
        prompt,
        system_prompt: role_text("system", false),
        temperature: obj
            .get("temperature")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
            .unwrap_or(DEFAULT_TEMPERATURE),
        max_tokens,
        traceparent: None,
    })
}

/// Renders a served call. Runtime failures are a 500 either way: with an OpenAI error
/// JSON (`reported_failure`) or a bare crash text (`http_500`).
pub(crate) fn render(s: &Served<'_>) -> (Reply, Outcome) {
    match s.plan.fault {
        FaultKind::Error if s.plan.crash => (
            Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Outcome::Http500,
        ),
        FaultKind::Error => (
            error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                None,
                runtime_error_message(s.plan.pick),
            ),
            Outcome::ReportedFailure,
        ),
        FaultKind::Malformed => (Reply::truncated_json(&completion(s)), Outcome::Malformed),
        _ => {
            let outcome = if s.text.is_empty() {
                Outcome::Empty
            } else {
                Outcome::Ok
            };
            let reply = if s.pad > 0 {
                Reply::padded(StatusCode::OK, &completion(s), s.text, s.pad)
            } else {
                Reply::json(StatusCode::OK, &completion(s))
            };
            (reply, outcome)
        }
    }
}

fn completion(s: &Served<'_>) -> Value {
    let prompt_tokens =
        estimate_tokens(&s.req.prompt) + s.req.system_prompt.as_deref().map_or(0, estimate_tokens);
    let completion_tokens = estimate_tokens(s.text).saturating_add(filler_tokens(s.pad));
    json!({
        "id": format!("chatcmpl-sim-{}", s.call_id),
        "object": "chat.completion",
        "created": s.completed_at.timestamp(),
        "model": &*s.req.model,
        "system_fingerprint": "beacon-sim",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer_field(s)},
            "logprobs": null,
            "finish_reason": if s.truncated { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        // Every simulated answer says so, on this contract too.
        "provenance": {
            "provider": "beacon-sim",
            "region": s.engine.label,
            "canonical_region": s.engine.region.as_str(),
            "call_id": s.call_id,
        },
    })
}
