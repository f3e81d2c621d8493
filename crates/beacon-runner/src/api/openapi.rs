//! The runner's OpenAPI 3.1 document: every public route's `#[utoipa::path]`, the error
//! shape, the bearer tokens, and `GET /openapi.json` serving it. The committed copy is
//! docs/openapi/runner.json (tests/openapi.rs keeps it equal to what is served).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Beacon runner",
        description = "Accepts signed job specs, runs every execution through the router, stores every answer with a signed receipt (docs/runner.md). Besides the answers listed per operation, any route may get a transport error, in ErrorBody: 405 METHOD_NOT_ALLOWED, 408 REQUEST_TIMEOUT, 413 PAYLOAD_TOO_LARGE (over the 2 MiB transport limit), 414 URI_TOO_LONG, 431 HEADERS_TOO_LARGE, 503 TOO_MANY_CONNECTIONS.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::jobs::submit,
        super::jobs::list,
        super::cross_region::submit,
        super::jobs::get,
        super::executions::for_job,
        super::executions::for_job_all,
        super::events::stream,
        super::report::json,
        super::report::html,
        super::report::answers_jsonl,
        super::executions::newest,
        super::executions::details,
        super::executions::receipt,
        super::portal::cross_region,
        super::portal::cross_region_diff,
        super::portal::cross_region_diff_post,
        super::portal::regions,
        super::portal::diff_analysis,
        super::portal::diffs,
        super::status::questions,
        super::status::health,
        super::status::diagnostics,
        super::router_view::providers,
        super::jobs::cancel,
        super::jobs::retry_failed,
        super::retry::retry_question,
        super::retry::retry_all_failed,
        super::portal::execute,
        super::transparency::root,
        super::transparency::proof,
        super::transparency::bundle,
        super::transparency::bundle_at_root,
        super::geo::geo,
        super::portal::bias_analysis,
        super::ws::upgrade,
        super::ws::upgrade_api,
        super::status::livez,
        super::status::readyz,
        super::status::metrics,
        serve,
    ),
    components(schemas(ErrorBody, Json, RetryLimit, SseEvent)),
    modifiers(&Guards),
    tags(
        (name = "jobs", description = "Submit, read, cancel and retry jobs"),
        (name = "executions", description = "Executions, receipts and the portal's result routes"),
        (name = "reports", description = "The cross-region analysis of a job"),
        (name = "transparency", description = "The receipt transparency log (docs/transparency.md)"),
        (name = "service", description = "Health, readiness, metrics, diagnostics and this document"),
    ),
)]
pub struct RunnerApi;

/// Any JSON value: the shape the handler builds (views.rs, portal.rs) and runner.md
/// describes.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct Json(#[allow(dead_code)] Value);

/// One Server-Sent Event of `GET /api/v1/jobs/{id}/events` (events.rs): `event` names
/// it (`job_update`, `execution_update`), `data` is its JSON text (a job or an
/// execution as the job routes show them).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    event: String,
    data: String,
}

/// `429` of `POST /executions/{id}/retry-question` once an execution has used
/// `scheduler.max_total_attempts` (the portal's shape, portal-contract.md 2.2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RetryLimit {
    error: String,
    /// `MAX_RETRIES`.
    error_code: String,
    execution_id: String,
    job_id: String,
    retry_attempt: u32,
    max_attempts: u32,
}

/// What every route shares because of the guards in front of all of them (guard.rs):
/// a URL with a control character is a 400, a POST not declared JSON a 415. And the
/// two bearer tokens.
struct Guards;

impl Modify for Guards {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "admin_token",
                "RUNNER_ADMIN_TOKEN: /api/v1/diagnostics (also passes the control routes)",
            ),
            (
                "control_token",
                "RUNNER_CONTROL_TOKEN: cancel, retry and execute, when the operator set one",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
        let error = |text: &str| {
            ResponseBuilder::new()
                .description(text)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (_, item) in doc.paths.paths.iter_mut() {
            for (post, op) in [(false, item.get.as_mut()), (true, item.post.as_mut())] {
                let Some(op) = op else { continue };
                let responses = &mut op.responses.responses;
                responses.entry("400".into()).or_insert_with(|| {
                    error("INVALID_CHARACTER: the URL holds a control character").into()
                });
                if post {
                    responses.entry("415".into()).or_insert_with(|| {
                        error("UNSUPPORTED_MEDIA_TYPE: a POST must say Content-Type: application/json").into()
                    });
                }
            }
        }
    }
}

/// The document as served (built once: it never changes while the process runs).
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    RunnerApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Json)),
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The answers of both submission routes (`POST /jobs`, `POST /jobs/cross-region`),
/// which run the same acceptance pipeline.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SubmitAnswers {
    #[response(
        status = 200,
        description = "The same submission again (Idempotency-Key or identical signed spec): the existing job, `idempotent: true`"
    )]
    Replayed(Json),
    #[response(
        status = 202,
        description = "Accepted: the job, its executions inserted, and links"
    )]
    Accepted(Json),
    #[response(
        status = 400,
        description = "A spec rule, signature, nonce or timestamp refused it (error_code names the rule; details.field the culprit)"
    )]
    Refused(ErrorBody),
    #[response(
        status = 403,
        description = "UNTRUSTED_KEY: the signing key is not trusted here"
    )]
    Untrusted(ErrorBody),
    #[response(
        status = 409,
        description = "A nonce already used, or an Idempotency-Key used for a different body"
    )]
    Conflict(ErrorBody),
    #[response(
        status = 413,
        description = "PAYLOAD_TOO_LARGE: the body is larger than limits.max_body_bytes"
    )]
    TooLarge(ErrorBody),
    #[response(
        status = 429,
        description = "RATE_LIMITED: too many submissions from this address (Retry-After)"
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 503,
        description = "ROUTER_UNAVAILABLE: models and regions could not be checked against the router"
    )]
    RouterUnavailable(ErrorBody),
}
