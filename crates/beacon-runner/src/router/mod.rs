//! The runner's client of the router: `POST /inference` with the attempt id as
//! `Idempotency-Key` and a W3C `traceparent` (its `router_call` span's), mapped to an
//! answer or a failure object;
//! `GET /providers` for what the router serves. Router-level trouble (unreachable,
//! timeouts, 5xx without an answer) feeds the circuit breaker; a provider failure the
//! router reports properly does not. Every answer body is read with a byte limit.
//! Every call carries the router's inference token (`ROUTER_TOKEN`) when one is set; a
//! 401 is `ROUTER_UNAUTHORIZED`, a configuration fact that bought nothing and is never
//! retried, and the health routes report it until a call is accepted again.

mod breaker;
mod catalog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beacon_core::wire::{InferenceRequest, InferenceResponse, ProvidersResponse};
use beacon_core::{ErrorCode, Failure, Stage};
use beacon_service::body::{BodyError, read_bounded};
use beacon_service::telemetry;
use tracing::Instrument;
use tracing::field::Empty;

pub use breaker::{Breaker, BreakerState, Permit};
pub use catalog::{Catalog, RouterCatalog};

use crate::config::BreakerConfig;

/// How a router call ended.
#[derive(Debug)]
pub enum CallResult {
    /// `success: true` (possibly an empty answer); not yet checked for provenance.
    Answer(InferenceResponse),
    /// A failure, explained; `failure.transient` says whether trying again can help.
    Failed {
        failure: Failure,
        /// Whether a provider may have been called (and paid) for this attempt.
        /// `false` only when that is known not to be so: the router could not be
        /// connected to, a proxy in front of it answered 502/503 for it, or the router
        /// says it called nobody (`NO_HEALTHY_PROVIDER`, `OVERLOADED` with
        /// `metadata.attempts = 0`). Such failures wait without spending attempts.
        bought: bool,
    },
}

pub struct RouterClient {
    http: reqwest::Client,
    base: reqwest::Url,
    /// Bytes of one answer body read at most (`limits.max_router_body_bytes`).
    max_body: u64,
    pub breaker: Breaker,
    /// The router answered the last inference with 401 (it refuses our token).
    token_refused: AtomicBool,
}

impl RouterClient {
    /// `token`: sent as `Authorization: Bearer` on every call (marked sensitive, so
    /// it is never shown in `Debug` output of the requests).
    pub fn new(
        base: reqwest::Url,
        breaker: BreakerConfig,
        max_body: u64,
        token: Option<&str>,
    ) -> RouterClient {
        let mut headers = reqwest::header::HeaderMap::new();
        // Config checked the token is visible ASCII, so it always makes a header.
        if let Some(Ok(mut v)) =
            token.map(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")))
        {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RouterClient {
            http,
            base,
            max_body,
            breaker: Breaker::new(breaker),
            token_refused: AtomicBool::new(false),
        }
    }

    /// Whether the router refused this runner's token on the last inference.
    pub fn token_refused(&self) -> bool {
        self.token_refused.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// One inference, under a breaker `permit` (from `breaker.acquire()`). `timeout`
    /// bounds the whole call; the router is given a slightly smaller budget so it
    /// answers (with its own failure) before we give up on it. The call is a
    /// `router_call` span (a child of the current span); its context goes out as the
    /// `traceparent`, or `fallback` when trace export is off.
    pub async fn infer(
        &self,
        permit: Permit<'_>,
        req: &InferenceRequest,
        attempt_id: &str,
        fallback: &str,
        timeout: Duration,
    ) -> CallResult {
        let span = tracing::info_span!(
            "router_call",
            otel.kind = "client",
            http.request.method = "POST",
            url.path = "/inference",
            http.response.status_code = Empty,
            failure_code = Empty,
        );
        let traceparent = telemetry::traceparent(&span).unwrap_or_else(|| fallback.to_string());
        let result = self
            .call(permit, req, attempt_id, &traceparent, timeout)
            .instrument(span.clone())
            .await;
        if let CallResult::Failed { failure, .. } = &result {
            telemetry::record_failure(&span, failure.code.as_str(), &failure.message);
        }
        result
    }

    async fn call(
        &self,
        permit: Permit<'_>,
        req: &InferenceRequest,
        attempt_id: &str,
        traceparent: &str,
        timeout: Duration,
    ) -> CallResult {
        let mut body = req.clone();
        let margin = (timeout / 20).clamp(Duration::from_millis(50), Duration::from_secs(5));
        body.timeout_ms = Some(timeout.saturating_sub(margin).as_millis().max(1) as u64);
        let sent = self
            .http
            .post(self.url("/inference"))
            .header("Idempotency-Key", attempt_id)
            .header("traceparent", traceparent)
            .timeout(timeout)
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                permit.failure();
                return CallResult::Failed {
                    bought: !e.is_connect(),
                    failure: transport_failure(&e, timeout, &self.base),
                };
            }
        };
        let status = resp.status().as_u16();
        tracing::Span::current().record("http.response.status_code", status);
        // The router checks the token before it reads the request: a 401 bought nothing.
        self.token_refused.store(status == 401, Ordering::Relaxed);
        if status == 401 {
            // Not the router's health: the breaker stays as it is.
            permit.neutral();
            let failure = Failure::new(
                ErrorCode::RouterUnauthorized,
                Stage::Router,
                "the router refused this runner's inference token (HTTP 401): set ROUTER_TOKEN \
                 to one of the router's [auth] tokens",
            )
            .with_http_status(401)
            .with_url(self.base.as_str())
            .with_transient(false);
            return CallResult::Failed {
                failure,
                bought: false,
            };
        }
        let bytes = match read_bounded(resp, self.max_body).await {
            Ok(b) => b,
            Err(BodyError::TooLarge { declared, .. }) => {
                // The router is alive and talking; what it sent is unusable.
                permit.neutral();
                let seen = match declared {
                    Some(n) => format!("it declared {n} bytes"),
                    None => "it grew past that while being read".to_string(),
                };
                let failure = Failure::new(
                    ErrorCode::RouterResponseTooLarge,
                    Stage::Router,
                    format!(
                        "the router's answer is larger than limits.max_router_body_bytes ({} bytes): {seen}; the rest was not read",
                        self.max_body
                    ),
                )
                .with_http_status(status)
                .with_transient(false);
                return CallResult::Failed {
                    failure,
                    bought: true,
                };
            }
            Err(BodyError::Transport(e)) => {
                permit.failure();
                return CallResult::Failed {
                    failure: transport_failure(&e, timeout, &self.base),
                    bought: true,
                };
            }
        };
        match serde_json::from_slice::<InferenceResponse>(&bytes) {
            Ok(r) if r.success => {
                permit.success();
                CallResult::Answer(r)
            }
            Ok(r) => {
                // The router answered properly; its failure is about providers.
                permit.neutral();
                let called_nobody = r.metadata.attempts == 0;
                let failure = r.failure.unwrap_or_else(|| {
                    let code = r.error_code.clone().unwrap_or(ErrorCode::RouterBadResponse);
                    Failure::new(
                        code,
                        Stage::Router,
                        r.error
                            .unwrap_or_else(|| format!("router answered HTTP {status}")),
                    )
                    .with_http_status(status)
                });
                let bought = !(called_nobody
                    && matches!(
                        failure.code,
                        ErrorCode::NoHealthyProvider | ErrorCode::Overloaded
                    ));
                CallResult::Failed { failure, bought }
            }
            Err(_) => {
                let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                let transient = status >= 500;
                if transient {
                    permit.failure();
                } else {
                    permit.neutral();
                }
                let failure = Failure::new(
                    ErrorCode::RouterBadResponse,
                    Stage::Router,
                    format!(
                        "router answered HTTP {status} without an /inference body: {snippet:?}"
                    ),
                )
                .with_http_status(status)
                .with_url(self.base.as_str())
                .with_transient(transient);
                // 502/503 without the router's own body: a proxy in front of it (Railway's
                // edge during a deploy) answered that it could not reach the router.
                CallResult::Failed {
                    failure,
                    bought: !matches!(status, 502 | 503),
                }
            }
        }
    }

    /// `GET /providers`.
    pub async fn providers(&self, timeout: Duration) -> Result<ProvidersResponse, Failure> {
        let (status, body) = self.get_json("/providers", timeout).await?;
        if status != 200 {
            return Err(Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /providers answered HTTP {status}"),
            )
            .with_http_status(status));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /providers body: {e}"),
            )
        })
    }

    /// `GET /health` of the router, as JSON (diagnostics).
    pub async fn health(&self, timeout: Duration) -> Result<serde_json::Value, Failure> {
        let (_, body) = self.get_json("/health", timeout).await?;
        serde_json::from_slice(&body).map_err(|e| {
            Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /health body: {e}"),
            )
        })
    }

    /// A GET whose body is read within the same limit as answers.
    async fn get_json(&self, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), Failure> {
        let resp = self
            .http
            .get(self.url(path))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_failure(&e, timeout, &self.base))?;
        let status = resp.status().as_u16();
        match read_bounded(resp, self.max_body).await {
            Ok(body) => Ok((status, body)),
            Err(BodyError::Transport(e)) => Err(transport_failure(&e, timeout, &self.base)),
            Err(BodyError::TooLarge { .. }) => Err(Failure::new(
                ErrorCode::RouterResponseTooLarge,
                Stage::Router,
                format!(
                    "GET {path}: body over limits.max_router_body_bytes ({} bytes)",
                    self.max_body
                ),
            )),
        }
    }
}

fn transport_failure(e: &reqwest::Error, timeout: Duration, base: &reqwest::Url) -> Failure {
    let f = if e.is_timeout() {
        Failure::new(
            ErrorCode::RouterTimeout,
            Stage::Router,
            format!(
                "the router did not answer within {:.1} s",
                timeout.as_secs_f64()
            ),
        )
    } else if e.is_connect() {
        Failure::new(
            ErrorCode::RouterUnreachable,
            Stage::Router,
            format!("cannot connect to the router: {}", root_cause(e)),
        )
    } else {
        Failure::new(
            ErrorCode::RouterUnreachable,
            Stage::Router,
            format!("the exchange with the router broke: {}", root_cause(e)),
        )
    };
    f.with_url(base.as_str())
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A W3C `traceparent` for one attempt when trace export is off: version 00, the job's
/// trace id, a fresh span id (so the router and providers still correlate the job).
pub fn traceparent(trace_id: &str) -> String {
    let mut span = [0u8; 8];
    let _ = getrandom::fill(&mut span);
    format!("00-{trace_id}-{}-01", hex::encode(span))
}

/// A fresh 32-hex-digit trace id.
pub fn new_trace_id() -> String {
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    hex::encode(id)
}
