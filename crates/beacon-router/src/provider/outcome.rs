//! Shared mapping of transport outcomes to failures: timeouts, connection errors and
//! HTTP statuses, with the rule of which side is at fault.

use beacon_core::{ErrorCode, Failure, Stage};

use super::CallFailure;
use beacon_service::body::{BodyError, read_prefix};

/// How much of an error body (4xx/5xx) is read: messages keep a 300-character snippet,
/// and a JSON error object (`{"error": {"message": …}}`) fits easily.
pub const ERROR_BODY_CAP: usize = 8 * 1024;
use crate::config::ProviderConfig;

/// Longest slice of a provider's error body kept in a message.
const BODY_SNIPPET: usize = 300;

/// A failure stamped with the provider's identity.
pub fn failure(cfg: &ProviderConfig, code: ErrorCode, stage: Stage, message: String) -> Failure {
    Failure::new(code, stage, message)
        .with_provider(&cfg.name, cfg.kind.as_str())
        .with_region(cfg.region.as_str())
        .with_url(cfg.url.as_str())
}

pub fn provider_fault(f: Failure) -> CallFailure {
    CallFailure {
        failure: f,
        request_caused: false,
    }
}

/// A reqwest error: timeout, connect error, or a broken exchange.
pub fn from_transport(cfg: &ProviderConfig, e: &reqwest::Error, timeout_s: f64) -> CallFailure {
    let (code, stage, msg) = if e.is_timeout() {
        (
            ErrorCode::ProviderTimeout,
            Stage::Upstream,
            format!("no answer within {timeout_s:.1} s"),
        )
    } else if e.is_connect() {
        (
            ErrorCode::ProviderConnectError,
            Stage::Connect,
            format!("cannot connect: {}", root_cause(e)),
        )
    } else {
        (
            ErrorCode::ProviderBadResponse,
            Stage::Response,
            format!("the exchange broke: {}", root_cause(e)),
        )
    };
    provider_fault(failure(cfg, code, stage, msg))
}

/// A non-success HTTP status. 400, 413 and 422 are the request's fault; everything
/// else (404 wrong URL or stopped app, 401/403 credentials, 429, 5xx) is the provider's.
/// Only 429 and 5xx are worth trying again later.
pub fn from_status(cfg: &ProviderConfig, status: u16, body: &str) -> CallFailure {
    let request_caused = matches!(status, 400 | 413 | 422);
    let transient = status == 429 || status >= 500;
    let snippet: String = body.trim().chars().take(BODY_SNIPPET).collect();
    let message = if snippet.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {snippet}")
    };
    let f = failure(cfg, ErrorCode::ProviderHttpError, Stage::Upstream, message)
        .with_http_status(status)
        .with_transient(transient && !request_caused);
    CallFailure {
        failure: f,
        request_caused,
    }
}

/// A body that could not be read whole. Too large is the provider's fault (a protocol
/// violation: it counts for health) but not transient: asking again would buy the same
/// huge answer again.
pub fn from_body(cfg: &ProviderConfig, e: BodyError, timeout_s: f64) -> CallFailure {
    match e {
        BodyError::Transport(e) => from_transport(cfg, &e, timeout_s),
        BodyError::TooLarge { limit, declared } => {
            let what = match declared {
                Some(len) => format!("the answer declares {len} bytes (Content-Length)"),
                None => "the answer grew past it while being read".to_string(),
            };
            let message = format!(
                "answer larger than the router's limit of {limit} bytes (max_response_bytes): {what}; the rest was not read"
            );
            provider_fault(
                failure(
                    cfg,
                    ErrorCode::ProviderResponseTooLarge,
                    Stage::Response,
                    message,
                )
                .with_transient(false),
            )
        }
    }
}

/// A non-success answer: reads the first few kilobytes of its body (never more) for the
/// message, then maps the status. `detail` may pick a better message out of the body.
pub async fn from_error_answer(
    cfg: &ProviderConfig,
    resp: reqwest::Response,
    detail: impl FnOnce(&str) -> Option<String>,
) -> CallFailure {
    let status = resp.status().as_u16();
    let cap = usize::try_from(cfg.max_response_bytes)
        .unwrap_or(usize::MAX)
        .min(ERROR_BODY_CAP);
    let bytes = read_prefix(resp, cap).await;
    let text = String::from_utf8_lossy(&bytes);
    let message = detail(&text).unwrap_or_else(|| text.into_owned());
    from_status(cfg, status, &message)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
