//! Modal web endpoints: POST `{model, prompt, temperature, max_tokens}` to the
//! function's URL; success and failure shapes as Modal sends them; a 303 for calls
//! longer than 150 s is followed with GET (the result URL can be reloaded without
//! new work) until the call's deadline.

use beacon_core::{ErrorCode, Stage};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::outcome::{failure, from_body, from_error_answer, from_transport, provider_fault};
use super::{CallFailure, CallFuture, ProviderClient, UpstreamAnswer, UpstreamCall};
use crate::config::ProviderConfig;
use beacon_service::body::read_bounded;

pub struct ModalClient {
    cfg: ProviderConfig,
    http: reqwest::Client,
}

impl ModalClient {
    pub fn new(cfg: &ProviderConfig, http: reqwest::Client) -> ModalClient {
        ModalClient {
            cfg: cfg.clone(),
            http,
        }
    }

    async fn run(&self, call: &UpstreamCall) -> Result<UpstreamAnswer, CallFailure> {
        let deadline = Instant::now() + call.timeout;
        let body = json!({"model": call.model, "prompt": call.prompt,
                          "temperature": call.temperature, "max_tokens": call.max_tokens});
        let mut req = self.http.post(self.cfg.url.clone()).json(&body);
        let mut url = self.cfg.url.clone();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(call));
            }
            if let Some(token) = &self.cfg.auth_token {
                req = req.bearer_auth(token);
            }
            // Every request of the call (the POST and each 303 follow-up) carries it.
            if let Some(tp) = &call.traceparent {
                req = req.header("traceparent", tp);
            }
            let resp = req
                .timeout(left)
                .send()
                .await
                .map_err(|e| from_transport(&self.cfg, &e, call.timeout.as_secs_f64()))?;
            let status = resp.status().as_u16();
            if status == 303 {
                // Modal cut the web request: the result URL waits for the same call.
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        provider_fault(failure(
                            &self.cfg,
                            ErrorCode::ProviderBadResponse,
                            Stage::Response,
                            "HTTP 303 without a usable Location".into(),
                        ))
                    })?;
                url = location.clone();
                req = self.http.get(location);
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(from_error_answer(&self.cfg, resp, |_| None).await);
            }
            let body = read_bounded(resp, self.cfg.max_response_bytes)
                .await
                .map_err(|e| from_body(&self.cfg, e, call.timeout.as_secs_f64()))?;
            return self.parse(&body);
        }
    }

    fn timeout(&self, call: &UpstreamCall) -> CallFailure {
        provider_fault(failure(
            &self.cfg,
            ErrorCode::ProviderTimeout,
            Stage::Upstream,
            format!("no answer within {:.1} s", call.timeout.as_secs_f64()),
        ))
    }

    /// Reads a 2xx body in Modal's shapes.
    fn parse(&self, body: &[u8]) -> Result<UpstreamAnswer, CallFailure> {
        // Only for messages: the answer itself is parsed from the exact bytes, so a
        // body that is not UTF-8 is refused rather than silently repaired.
        let snippet = || -> String {
            String::from_utf8_lossy(&body[..body.len().min(480)])
                .chars()
                .take(120)
                .collect()
        };
        let bad = |msg: String| {
            provider_fault(failure(
                &self.cfg,
                ErrorCode::ProviderBadResponse,
                Stage::Response,
                msg,
            ))
        };
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("answer is not JSON ({e}): {:?}", snippet())))?;
        let error_text = || {
            v.get("error")
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .unwrap_or_else(|| "no error text".into())
        };
        match v.get("success") {
            Some(Value::Bool(true)) => Ok(UpstreamAnswer {
                // A missing or null response is an empty answer, not a failure.
                text: v
                    .get("response")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                tokens_generated: v.get("tokens_generated").and_then(Value::as_u64),
                prompt_tokens: v.get("prompt_tokens").and_then(Value::as_u64),
                region_label: v.get("region").and_then(Value::as_str).map(str::to_string),
                receipt: v.get("receipt").cloned(),
            }),
            Some(Value::Bool(false)) => Err(provider_fault(failure(
                &self.cfg,
                ErrorCode::ProviderReportedFailure,
                Stage::Upstream,
                format!("provider reported a failure: {}", error_text()),
            ))),
            None if v.get("status").and_then(Value::as_str) == Some("error") => {
                // Modal's validation errors ("Prompt is required", "Unknown model: x")
                // come back with HTTP 200: the request was at fault.
                Err(CallFailure {
                    failure: failure(
                        &self.cfg,
                        ErrorCode::ProviderReportedFailure,
                        Stage::Validation,
                        format!("provider refused the request: {}", error_text()),
                    )
                    .with_transient(false),
                    request_caused: true,
                })
            }
            _ => Err(bad(format!(
                "answer has neither success nor status: {}",
                snippet()
            ))),
        }
    }
}

impl ProviderClient for ModalClient {
    fn call<'a>(&'a self, call: &'a UpstreamCall) -> CallFuture<'a> {
        Box::pin(self.run(call))
    }
}
