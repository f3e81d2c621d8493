//! The router's trace spans (docs/operations.md "Traces"): `inference` (server kind,
//! continued from the caller's W3C `traceparent`), one `provider_attempt` per upstream
//! call (client kind, its `traceparent` forwarded to the provider), and `probe` (a root
//! span of its own). Failures carry `failure_code` and an error status. With trace export
//! off these are plain `tracing` spans and the caller's `traceparent` is forwarded as
//! received, so a provider's log still correlates with the runner's.

use axum::http::HeaderMap;
use beacon_core::wire::InferenceResponse;
use beacon_service::telemetry;
use tracing::Span;
use tracing::field::Empty;

use crate::provider::{CallFailure, UpstreamAnswer};
use crate::registry::Provider;

/// The `traceparent` header a request carried (visible ASCII only).
pub fn incoming_traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The server span of one `/inference` (or chat completions) request, a child of the
/// caller's span when it sent a valid `traceparent`, a new trace otherwise.
pub fn inference(headers: &HeaderMap, route: &'static str) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "inference",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = route,
        http.response.status_code = Empty,
        model = Empty,
        region = Empty,
        provider = Empty,
        attempts = Empty,
        idempotent_replay = Empty,
        failure_code = Empty,
    );
    telemetry::continue_from(&span, incoming_traceparent(headers).as_deref());
    span
}

/// Records what an inference answered: the request's model and region, who answered,
/// how many providers were called, and the failure (code and error status) if any.
pub fn answered(span: &Span, status: u16, body: &InferenceResponse, replayed: bool) {
    span.record("http.response.status_code", status);
    if let Some(m) = &body.metadata.model {
        span.record("model", m.as_str());
    }
    if let Some(p) = &body.provider_used {
        span.record("provider", p.as_str());
    }
    span.record("attempts", body.metadata.attempts);
    if replayed {
        span.record("idempotent_replay", true);
    }
    if let Some(f) = &body.failure {
        if let Some(r) = &f.region {
            span.record("region", r.as_str());
        }
        telemetry::record_failure(span, f.code.as_str(), &f.message);
    } else if let Some(r) = &body.metadata.region {
        span.record("region", r.as_str());
    }
}

/// The client span of one upstream call (a child of the current `inference` span).
pub fn provider_attempt(provider: &Provider, model: &str) -> Span {
    tracing::info_span!(
        "provider_attempt",
        otel.kind = "client",
        provider = provider.cfg.name.as_str(),
        provider.kind = provider.cfg.kind.as_str(),
        region = provider.cfg.region.as_str(),
        model = model,
        http.response.status_code = Empty,
        failure_code = Empty,
    )
}

/// A probe: a root span of its own, never part of a request's trace.
pub fn probe(provider: &Provider, model: &str) -> Span {
    tracing::info_span!(
        parent: None,
        "probe",
        otel.kind = "client",
        provider = provider.cfg.name.as_str(),
        provider.kind = provider.cfg.kind.as_str(),
        region = provider.cfg.region.as_str(),
        model = model,
        http.response.status_code = Empty,
        failure_code = Empty,
    )
}

/// What to send upstream as `traceparent`: the upstream span's own context, or with
/// export off the caller's header as received.
pub fn upstream_traceparent(span: &Span, incoming: Option<&str>) -> Option<String> {
    telemetry::traceparent(span).or_else(|| incoming.map(str::to_string))
}

/// Records an upstream call's end: the HTTP status (200 for an answer, the provider's
/// for a failure when it answered at all) and the failure.
pub fn upstream_ended(span: &Span, result: &Result<UpstreamAnswer, CallFailure>) {
    match result {
        Ok(_) => {
            span.record("http.response.status_code", 200u16);
        }
        Err(cf) => {
            if let Some(s) = cf.failure.http_status {
                span.record("http.response.status_code", s);
            }
            telemetry::record_failure(span, cf.failure.code.as_str(), &cf.failure.message);
        }
    }
}
