//! The OpenAI-compatible front door: `POST /v1/chat/completions` (plain or
//! `stream: true` as Server-Sent Events), `GET /v1/models` and `GET /v1/models/{id}`,
//! so an OpenAI client library works through the router unchanged (its base URL set to
//! the router's `/v1`, its API key the inference token, and the region in an
//! `X-Beacon-Region` header, which the libraries let a client add).
//!
//! Every answer is bought whole and checked (provider, region) by the same routing as
//! `/inference` before a byte of it goes out; a stream therefore carries it as one
//! content chunk, then the finish chunk, the usage chunk when asked for
//! (`stream_options.include_usage`), and `[DONE]`. A failure before the answer is an
//! OpenAI-shaped error with its status, never a stream.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use beacon_core::wire::InferenceRequest;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::AppState;
use super::auth;
use super::inference::{Peer, body_refusal, caller, challenge, retry_after_header, trace_id};
use crate::spans;

/// `POST /v1/chat/completions` body: the part of OpenAI's request the router reads.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// What newer clients send instead of `max_tokens`.
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// `stream_options`: a usage chunk before `[DONE]` when `include_usage`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// One chat message; `content` is a string or an array of `{type, text}` parts.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// `{"error": {message, type, code}}` with `status` (and `Retry-After`, which OpenAI
/// libraries honour when they retry).
fn openai_error(status: u16, message: &str, code: &str, retry_after: Option<f64>) -> Response {
    let kind = match status {
        401 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s < 500 => "invalid_request_error",
        _ => "api_error",
    };
    let body = json!({"error": {"message": message, "type": kind, "code": code, "param": null}});
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        Json(body),
    )
        .into_response();
    if let Some(v) = retry_after_header(retry_after) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn refused() -> Response {
    challenge(openai_error(401, auth::REFUSED, "UNAUTHORIZED", None))
}

/// The prompt: the last user message; the text parts of a content array, joined.
fn prompt_of(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| match &m.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .unwrap_or_default()
}

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "inference",
    operation_id = "chat_completions",
    summary = "OpenAI-compatible front door: the last user message, in the region of X-Beacon-Region",
    request_body(content = ChatRequest, content_type = "application/json"),
    params(
        ("X-Beacon-Region" = String, Header, description = "The region to answer from (canonical slug or alias)"),
    ),
    security(("inference_token" = [])),
    responses(
        (status = 200, description = "An OpenAI chat.completion plus `beacon: {provider, region, warnings}`; with `stream: true`, text/event-stream chunks then `[DONE]`", body = super::openapi::Json),
        (status = 400, description = "INVALID_REQUEST: the body, or the X-Beacon-Region header is missing", body = super::openapi::OpenAiError),
        (status = 401, description = "UNAUTHORIZED: no inference token, or a wrong one", body = super::openapi::OpenAiError),
        (status = 404, description = "NO_PROVIDER_FOR_MODEL", body = super::openapi::OpenAiError),
        (status = 408, description = "REQUEST_TIMEOUT", body = super::openapi::OpenAiError),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = super::openapi::OpenAiError),
        (status = 502, description = "The provider failed", body = super::openapi::OpenAiError),
        (status = 503, description = "NO_HEALTHY_PROVIDER or OVERLOADED", body = super::openapi::OpenAiError),
        (status = 504, description = "PROVIDER_TIMEOUT", body = super::openapi::OpenAiError),
    ),
)]
pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if caller(&app, &headers, peer).is_none() {
        return refused();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let (status, message, code) = body_refusal(&app, &e);
            return openai_error(status, &message, code, None);
        }
    };
    let Some(region) = headers.get("x-beacon-region").and_then(|v| v.to_str().ok()) else {
        return openai_error(
            400,
            "the X-Beacon-Region header is required",
            "INVALID_REQUEST",
            None,
        );
    };
    let chat: ChatRequest = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return openai_error(400, &format!("invalid body: {e}"), "INVALID_REQUEST", None);
        }
    };
    let mut req = InferenceRequest::new(&chat.model, &prompt_of(&chat.messages), region);
    if let Some(t) = chat.temperature {
        req.temperature = t;
    }
    if let Some(m) = chat.max_completion_tokens.or(chat.max_tokens) {
        req.max_tokens = m;
    }
    req.trace_id = trace_id(&headers);
    // Traced as `/inference` is: continued from the caller's traceparent.
    let span = spans::inference(&headers, "/v1/chat/completions");
    let incoming = spans::incoming_traceparent(&headers);
    let routed = app
        .router
        .infer(&req, incoming.as_deref())
        .instrument(span.clone())
        .await;
    spans::answered(&span, routed.status, &routed.body, false);
    let r = routed.body;
    if !r.success {
        let (msg, code, retry) = r
            .failure
            .as_ref()
            .map(|f| (f.message.clone(), f.code.to_string(), f.retry_after))
            .unwrap_or_else(|| ("inference failed".into(), "INTERNAL".into(), None));
        return openai_error(routed.status, &msg, &code, retry);
    }
    let completion_tokens = r.metadata.tokens_generated.unwrap_or(0);
    let prompt_tokens = r.metadata.prompt_tokens.unwrap_or(0);
    let answer = Answer {
        // Unique per answer: clients key logs and caches on it.
        id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
        created: chrono::Utc::now().timestamp(),
        model: chat.model,
        text: r.response.unwrap_or_default(),
        usage: json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}),
        beacon: json!({"provider": r.provider_used, "region": r.metadata.region, "warnings": r.warnings}),
    };
    if chat.stream {
        let usage = chat.stream_options.is_some_and(|o| o.include_usage);
        answer.stream(usage)
    } else {
        (StatusCode::OK, Json(answer.completion())).into_response()
    }
}

/// One routed answer in the OpenAI shapes.
struct Answer {
    id: String,
    created: i64,
    model: String,
    text: String,
    usage: Value,
    /// Beacon's provenance (provider, region, warnings), which OpenAI clients ignore.
    beacon: Value,
}

impl Answer {
    fn completion(&self) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text},
                         "finish_reason": "stop", "logprobs": null}],
            "usage": self.usage,
            "beacon": self.beacon,
        })
    }

    fn chunk(&self, choices: Value, usage: Option<&Value>) -> Value {
        let mut c = json!({"id": self.id, "object": "chat.completion.chunk",
                           "created": self.created, "model": self.model, "choices": choices});
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        c
    }

    /// `text/event-stream`: the content chunk (with the provenance), the finish
    /// chunk, the usage chunk if asked for, then `[DONE]`.
    fn stream(self, with_usage: bool) -> Response {
        let mut first = self.chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": self.text},
                    "finish_reason": null, "logprobs": null}]),
            None,
        );
        first["beacon"] = self.beacon.clone();
        let mut events = vec![
            first,
            self.chunk(
                json!([{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": null}]),
                None,
            ),
        ];
        if with_usage {
            events.push(self.chunk(json!([]), Some(&self.usage)));
        }
        let events = events
            .into_iter()
            .map(|c| Event::default().data(c.to_string()))
            .chain(std::iter::once(Event::default().data("[DONE]")))
            .map(Ok::<_, Infallible>);
        Sse::new(futures_util::stream::iter(events)).into_response()
    }
}

/// The models this router serves, in any region, sorted.
fn served(app: &AppState) -> BTreeSet<&str> {
    app.config
        .providers
        .iter()
        .flat_map(|p| p.models.iter().map(|m| m.id.as_str()))
        .collect()
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "beacon"})
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "inference",
    operation_id = "list_models",
    summary = "The models served in any region (OpenAI's list shape)",
    security(("inference_token" = [])),
    responses(
        (status = 200, description = "`{object: \"list\", data: [{id, object, created, owned_by}]}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: no inference token, or a wrong one", body = super::openapi::OpenAiError),
    ),
)]
pub async fn models(State(app): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Response {
    if caller(&app, &headers, peer).is_none() {
        return refused();
    }
    let data: Vec<Value> = served(&app).into_iter().map(model_object).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "inference",
    operation_id = "retrieve_model",
    summary = "One model served here (OpenAI's model shape)",
    params(("id" = String, Path, description = "A model id")),
    security(("inference_token" = [])),
    responses(
        (status = 200, description = "`{id, object: \"model\", created, owned_by}`", body = super::openapi::Json),
        (status = 401, description = "UNAUTHORIZED: no inference token, or a wrong one", body = super::openapi::OpenAiError),
        (status = 404, description = "model_not_found", body = super::openapi::OpenAiError),
    ),
)]
pub async fn model(
    State(app): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if caller(&app, &headers, peer).is_none() {
        return refused();
    }
    if served(&app).contains(id.as_str()) {
        Json(model_object(&id)).into_response()
    } else {
        openai_error(
            404,
            &format!("the model {id:?} is not served here"),
            "model_not_found",
            None,
        )
    }
}
