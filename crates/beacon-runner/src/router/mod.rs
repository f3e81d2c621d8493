//! The runner's client of the router: `POST /inference` with the attempt id as
//! `Idempotency-Key` and a W3C `traceparent`, mapped to an answer or a failure object;
//! `GET /providers` for what the router serves. Router-level trouble (unreachable,
//! timeouts, 5xx without an answer) feeds the circuit breaker; a provider failure the
//! router reports properly does not.

mod breaker;
mod catalog;

use std::time::Duration;

use beacon_core::wire::{InferenceRequest, InferenceResponse, ProvidersResponse};
use beacon_core::{ErrorCode, Failure, Stage};

pub use breaker::{Breaker, BreakerState};
pub use catalog::{Catalog, RouterCatalog};

use crate::config::BreakerConfig;

/// How a router call ended.
#[derive(Debug)]
pub enum CallResult {
    /// `success: true` (possibly an empty answer).
    Answer(InferenceResponse),
    /// A failure, explained; `failure.transient` says whether trying again can help.
    Failed(Failure),
    /// The breaker is open: nothing was sent; ask again after this long.
    BreakerOpen(Duration),
}

pub struct RouterClient {
    http: reqwest::Client,
    base: reqwest::Url,
    pub breaker: Breaker,
}

impl RouterClient {
    pub fn new(base: reqwest::Url, breaker: BreakerConfig) -> RouterClient {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RouterClient {
            http,
            base,
            breaker: Breaker::new(breaker),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// One inference. `timeout` bounds the whole call; the router is given a slightly
    /// smaller budget so it answers (with its own failure) before we give up on it.
    pub async fn infer(
        &self,
        req: &InferenceRequest,
        attempt_id: &str,
        traceparent: &str,
        timeout: Duration,
    ) -> CallResult {
        let permit = match self.breaker.allow() {
            Ok(p) => p,
            Err(wait) => return CallResult::BreakerOpen(wait),
        };
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
                return CallResult::Failed(transport_failure(&e, timeout, &self.base));
            }
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                permit.failure();
                return CallResult::Failed(transport_failure(&e, timeout, &self.base));
            }
        };
        match serde_json::from_str::<InferenceResponse>(&text) {
            Ok(r) if r.success => {
                permit.success();
                CallResult::Answer(r)
            }
            Ok(r) => {
                // The router answered properly; its failure is about providers.
                permit.neutral();
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
                CallResult::Failed(failure)
            }
            Err(_) => {
                let snippet: String = text.chars().take(200).collect();
                let transient = status >= 500;
                if transient {
                    permit.failure();
                } else {
                    permit.neutral();
                }
                CallResult::Failed(
                    Failure::new(
                        ErrorCode::RouterBadResponse,
                        Stage::Router,
                        format!(
                            "router answered HTTP {status} without an /inference body: {snippet:?}"
                        ),
                    )
                    .with_http_status(status)
                    .with_url(self.base.as_str())
                    .with_transient(transient),
                )
            }
        }
    }

    /// `GET /providers`.
    pub async fn providers(&self, timeout: Duration) -> Result<ProvidersResponse, Failure> {
        let resp = self
            .http
            .get(self.url("/providers"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_failure(&e, timeout, &self.base))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /providers answered HTTP {status}"),
            )
            .with_http_status(status));
        }
        resp.json::<ProvidersResponse>().await.map_err(|e| {
            Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /providers body: {e}"),
            )
        })
    }

    /// `GET /health` of the router, as JSON (diagnostics).
    pub async fn health(&self, timeout: Duration) -> Result<serde_json::Value, Failure> {
        let resp = self
            .http
            .get(self.url("/health"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_failure(&e, timeout, &self.base))?;
        resp.json().await.map_err(|e| {
            Failure::new(
                ErrorCode::RouterBadResponse,
                Stage::Router,
                format!("GET /health body: {e}"),
            )
        })
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

/// A W3C `traceparent` for one attempt: version 00, the job's trace id, a fresh span.
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
