//! The HTTP surface: axum routes for both inference contracts, result URLs, health, and
//! the `/__sim` control routes; turning engine replies into responses (or dropped
//! connections).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::ProviderKind;
use crate::engine::Engine;
use crate::faults::{FaultPatch, Faults};
use crate::reply::{
    CALL_ID_HEADER, CallRequest, INVALID_FUNCTION_CALL, Refusal, Reply, json_bytes,
};
use crate::stats::{Outcome, Route};
use crate::waiting::{Join, OriginGuard, Waited, wait};
use crate::{modal, openai};

/// Per-connection control, put in every request's extensions by the server: cancelling
/// `kill` makes the connection task drop the connection without writing anything.
#[derive(Clone, Debug)]
pub(crate) struct ConnCtl {
    pub kill: CancellationToken,
}

pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/", post(modal_infer).get(result))
        .route("/v1/chat/completions", post(openai_infer))
        .route("/chat/completions", post(openai_infer))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(health))
        .route("/__sim/stats", get(stats))
        .route("/__sim/faults", get(get_faults).post(post_faults))
        .fallback(not_found)
        .with_state(engine)
}

async fn modal_infer(
    State(engine): State<Arc<Engine>>,
    Extension(ctl): Extension<ConnCtl>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer(engine, ctl, &headers, body, Route::Modal).await
}

async fn openai_infer(
    State(engine): State<Arc<Engine>>,
    Extension(ctl): Extension<ConnCtl>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer(engine, ctl, &headers, body, Route::Openai).await
}

/// Longest `traceparent` kept in the log (a W3C one is 55 characters).
const MAX_TRACEPARENT: usize = 128;

/// The request's `traceparent`, as sent (printable ASCII, bounded), for the call log.
fn traceparent(headers: &HeaderMap) -> Option<Box<str>> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_TRACEPARENT)
        .map(Box::from)
}

async fn infer(
    engine: Arc<Engine>,
    ctl: ConnCtl,
    headers: &HeaderMap,
    body: Bytes,
    route: Route,
) -> Response {
    let faults = engine.faults();
    let traceparent = traceparent(headers);
    if faults.inference_broken {
        // The platform answers before the app sees the body; the log still records what
        // the request asked for, as far as it can be read.
        let (model, prompt) = lenient_fields(&body);
        engine.record_refused(
            route,
            &model,
            &prompt,
            Outcome::InferenceBroken,
            404,
            traceparent,
        );
        return Reply::text(StatusCode::NOT_FOUND, INVALID_FUNCTION_CALL).to_response(None);
    }
    let parsed = match route {
        Route::Modal => modal::parse(&engine, &body),
        Route::Openai => openai::parse(&engine, &body),
    };
    match parsed {
        Ok(mut req) => {
            req.traceparent = traceparent;
            serve(engine, ctl, req, &faults).await
        }
        Err(refusal) => refuse(&engine, route, refusal, traceparent),
    }
}

fn refuse(engine: &Engine, route: Route, r: Refusal, traceparent: Option<Box<str>>) -> Response {
    let status = r.reply.status().unwrap_or(400);
    let id = engine.record_refused(route, &r.model, &r.prompt, r.outcome, status, traceparent);
    r.reply.to_response(Some(id))
}

/// Runs a call and answers with its reply, or a 303 when it outlives `redirect_after`.
async fn serve(engine: Arc<Engine>, ctl: ConnCtl, req: CallRequest, faults: &Faults) -> Response {
    let call = engine.start(req, faults);
    let mut guard = OriginGuard::new(engine.clone(), call.id);
    let reply = match wait(&call, faults.redirect_after()).await {
        Waited::Reply(r) => r,
        Waited::Gone => {
            guard.disarm();
            return call_gone(call.id);
        }
        Waited::TimedOut => match engine.redirect(&call) {
            Ok(()) => {
                guard.disarm();
                return see_other(call.id);
            }
            Err(Some(r)) => r,
            Err(None) => {
                guard.disarm();
                return call_gone(call.id);
            }
        },
    };
    guard.disarm();
    deliver(&engine, &reply, &ctl, call.id).await
}

/// Writes a reply; for a drop, has the connection closed instead and never returns, so
/// no byte of a response can reach the socket first. A padded reply streams and reports
/// its text's hash (or the client's hang-up) to the call's record.
async fn deliver(engine: &Arc<Engine>, reply: &Reply, ctl: &ConnCtl, call_id: u64) -> Response {
    match reply {
        Reply::Drop => {
            ctl.kill.cancel();
            std::future::pending::<Response>().await
        }
        Reply::Padded(p) => p.response(Some((engine.clone(), call_id))),
        Reply::Http { .. } => reply.to_response(Some(call_id)),
    }
}

fn see_other(call_id: u64) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/?__result={call_id}")) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(CALL_ID_HEADER, HeaderValue::from(call_id));
    response
}

/// The call was cancelled while this request waited (in practice: shutdown).
fn call_gone(call_id: u64) -> Response {
    Reply::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "beacon-sim: the call was cancelled (simulator shutting down)",
    )
    .to_response(Some(call_id))
}

/// `GET /?__result=<id>`: waits for an existing call (never starts work), again up to
/// `redirect_after`, then 303 to the same URL.
async fn result(
    State(engine): State<Arc<Engine>>,
    Extension(ctl): Extension<ConnCtl>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(raw) = params.get("__result") else {
        // A Modal POST endpoint answers GET / like this (FastAPI's shape).
        return Reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"detail": "Method Not Allowed"}),
        )
        .to_response(None);
    };
    let unknown = || {
        Reply::text(
            StatusCode::NOT_FOUND,
            format!("beacon-sim: no call with id {raw:?}"),
        )
        .to_response(None)
    };
    let Ok(id) = raw.parse::<u64>() else {
        return unknown();
    };
    let no_result = || {
        Reply::text(
            StatusCode::GONE,
            format!("beacon-sim: call {id} has no result to give (cancelled, refused or expired)"),
        )
        .to_response(Some(id))
    };
    let (call, _waiter) = match engine.join(id) {
        Join::Unknown => return unknown(),
        Join::NoResult => return no_result(),
        Join::Ready(reply) => return deliver(&engine, &reply, &ctl, id).await,
        Join::Wait(call, guard) => (call, guard),
    };
    let faults = engine.faults();
    let reply = match wait(&call, faults.redirect_after()).await {
        Waited::Reply(r) => r,
        // A call with a waiter is only cancelled by shutdown.
        Waited::Gone => return call_gone(id),
        Waited::TimedOut => match engine.redirect(&call) {
            Ok(()) => return see_other(id),
            Err(Some(r)) => r,
            Err(None) => return no_result(),
        },
    };
    deliver(&engine, &reply, &ctl, id).await
}

async fn health(State(engine): State<Arc<Engine>>) -> Response {
    if engine.faults().health_broken {
        return Reply::text(StatusCode::NOT_FOUND, INVALID_FUNCTION_CALL).to_response(None);
    }
    // Like Modal's health function, this proves nothing about inference.
    Json(json!({
        "status": "healthy",
        "region": engine.label,
        "kind": engine.kind,
        "provider": "beacon-sim",
        "simulated": true,
    }))
    .into_response()
}

async fn models(State(engine): State<Arc<Engine>>) -> Response {
    let data: Vec<_> = engine
        .models()
        .iter()
        .map(|m| json!({"id": &**m, "object": "model", "created": 0, "owned_by": "beacon-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    since_id: Option<u64>,
    limit: Option<usize>,
}

async fn stats(State(engine): State<Arc<Engine>>, Query(q): Query<StatsQuery>) -> Response {
    let snapshot = engine.stats(q.since_id.unwrap_or(0), q.limit.unwrap_or(usize::MAX));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::reply::JSON)],
        json_bytes(&snapshot),
    )
        .into_response()
}

async fn get_faults(State(engine): State<Arc<Engine>>) -> Response {
    Json(engine.faults()).into_response()
}

async fn post_faults(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let bad = |error: String, code: &str| {
        Reply::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": error, "error_code": code}),
        )
        .to_response(None)
    };
    let patch: FaultPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("invalid fault patch: {e}"), "INVALID_FAULT_PATCH"),
    };
    match engine.set_faults(&patch) {
        Ok(faults) => {
            tracing::info!(?faults, "faults changed at run time");
            Json(faults).into_response()
        }
        Err(e) => bad(e.0, "FAULT_OUT_OF_RANGE"),
    }
}

async fn not_found(State(engine): State<Arc<Engine>>, method: Method, uri: Uri) -> Response {
    match engine.kind {
        ProviderKind::Modal => {
            Reply::text(StatusCode::NOT_FOUND, INVALID_FUNCTION_CALL).to_response(None)
        }
        ProviderKind::Openai => openai::error_reply(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            None,
            &format!("Unknown request URL: {method} {}", uri.path()),
        )
        .to_response(None),
    }
}

/// Model and prompt of a body that was not validated, for the log only.
fn lenient_fields(body: &[u8]) -> (String, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (String::new(), String::new());
    };
    let model = v
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    let prompt = v
        .get("prompt")
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .or_else(|| {
            v.get("messages")?
                .as_array()?
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))?
                .get("content")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    (model, prompt)
}
