//! Contract-neutral request and answer types: a validated `CallRequest`, the `Reply` a
//! finished call gives (kept byte for byte for reloads), a `Refusal` given before any
//! work, and small helpers to build HTTP bodies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::Engine;
use crate::padded::Padded;
use crate::plan::Plan;
use crate::stats::{Outcome, Route};

pub(crate) const JSON: &str = "application/json";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// Modal's platform answer for a URL that does not reach a working function.
pub(crate) const INVALID_FUNCTION_CALL: &str = "modal-http: invalid function call";

/// Response header naming the simulator call an answer belongs to.
pub(crate) const CALL_ID_HEADER: &str = "x-beacon-sim-call-id";

/// What a finished call answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Http {
        status: StatusCode,
        content_type: &'static str,
        body: Bytes,
    },
    /// A success whose answer text is padded with streamed filler (`oversize_bytes`).
    Padded(Arc<Padded>),
    /// Close the connection without writing anything.
    Drop,
}

impl Reply {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        Reply::Http {
            status,
            content_type: JSON,
            body: json_bytes(value),
        }
    }

    pub fn text(status: StatusCode, text: impl Into<String>) -> Reply {
        Reply::Http {
            status,
            content_type: TEXT,
            body: Bytes::from(text.into()),
        }
    }

    /// A 200 `application/json` whose body is the first half of a valid JSON document,
    /// so it can never parse.
    pub fn truncated_json(value: &impl Serialize) -> Reply {
        let full = json_bytes(value);
        let mut cut = full.len() / 2;
        while cut > 0 && std::str::from_utf8(&full[..cut]).is_err() {
            cut -= 1;
        }
        Reply::Http {
            status: StatusCode::OK,
            content_type: JSON,
            body: full.slice(..cut.max(1)),
        }
    }

    /// A success JSON whose answer fields hold `text + PAD_MARKER`, streamed with `pad`
    /// filler bytes after each copy of the text (plain JSON if there is no marker).
    pub fn padded(status: StatusCode, value: &serde_json::Value, text: &str, pad: u64) -> Reply {
        match Padded::new(status, value, text, pad) {
            Some(p) => Reply::Padded(Arc::new(p)),
            None => Reply::json(status, value),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Http { status, .. } => Some(status.as_u16()),
            Reply::Padded(p) => Some(p.status().as_u16()),
            Reply::Drop => None,
        }
    }

    /// The HTTP response for a reply (`Drop` is handled by the caller, which owns the
    /// connection; here it degrades to an empty 502 that is never expected to be sent).
    /// A padded reply streams without reporting to the call log; `http::deliver` gives
    /// it the engine so the log learns the hash and any hang-up.
    pub fn to_response(&self, call_id: Option<u64>) -> Response {
        if let Reply::Padded(p) = self {
            let mut response = p.response(None);
            if let Some(id) = call_id {
                response
                    .headers_mut()
                    .insert(CALL_ID_HEADER, HeaderValue::from(id));
            }
            return response;
        }
        let mut response = match self {
            Reply::Http {
                status,
                content_type,
                body,
            } => (
                *status,
                [(header::CONTENT_TYPE, *content_type)],
                body.clone(),
            )
                .into_response(),
            Reply::Drop | Reply::Padded(_) => StatusCode::BAD_GATEWAY.into_response(),
        };
        if let Some(id) = call_id {
            response
                .headers_mut()
                .insert(CALL_ID_HEADER, HeaderValue::from(id));
        }
        response
    }
}

pub(crate) fn json_bytes(value: &impl Serialize) -> Bytes {
    // Serializing our own `serde_json::Value`s and derive(Serialize) structs cannot fail;
    // an empty body would be the (visible) symptom if it ever did.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// A validated inference request, whichever contract it came in on.
#[derive(Debug, Clone)]
pub(crate) struct CallRequest {
    pub route: Route,
    pub model: Arc<str>,
    pub prompt: String,
    pub system_prompt: Option<String>,
    pub temperature: f64,
    pub max_tokens: u32,
    /// The request's `traceparent` header, recorded in the call log.
    pub traceparent: Option<Box<str>>,
}

/// A request refused before any work, in the shape of its contract.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub outcome: Outcome,
    pub reply: Reply,
    /// What the log records about the request (as far as it could be read).
    pub model: String,
    pub prompt: String,
}

/// What the contract renderers need to write an answer.
pub(crate) struct Served<'a> {
    pub engine: &'a Engine,
    pub call_id: u64,
    pub req: &'a CallRequest,
    pub plan: &'a Plan,
    pub occurrence: u32,
    /// The answer text, before any padding.
    pub text: &'a str,
    /// Filler bytes to add after the text (`oversize_bytes`; 0 = none).
    pub pad: u64,
    pub truncated: bool,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// Admission to answer, seconds.
    pub duration_secs: f64,
    /// Service time after queueing and cold start, seconds.
    pub inference_secs: f64,
}

/// Seconds rounded to the millisecond, as the answers report them.
pub(crate) fn secs(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// A plausible runtime error message, chosen by the call's seeded draw.
pub(crate) fn runtime_error_message(pick: u64) -> &'static str {
    const MESSAGES: [&str; 3] = [
        "CUDA out of memory. Tried to allocate 2.00 GiB (simulated fault)",
        "Model worker crashed during generation (simulated fault)",
        "Generation timed out inside the container (simulated fault)",
    ];
    MESSAGES[(pick % MESSAGES.len() as u64) as usize]
}
