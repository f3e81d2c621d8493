//! OpenAI-compatible servers (vLLM, Ollama, llama.cpp, TGI, hosted APIs): POST
//! `{url}/chat/completions`; the answer is `choices[0].message.content`.

use beacon_core::{ErrorCode, Stage};
use serde_json::{Value, json};

use super::outcome::{failure, from_body, from_error_answer, from_transport, provider_fault};
use super::{CallFailure, CallFuture, ProviderClient, UpstreamAnswer, UpstreamCall};
use crate::config::ProviderConfig;
use beacon_service::body::read_bounded;

pub struct OpenAiClient {
    cfg: ProviderConfig,
    endpoint: reqwest::Url,
    http: reqwest::Client,
}

impl OpenAiClient {
    pub fn new(cfg: &ProviderConfig, http: reqwest::Client) -> OpenAiClient {
        let base = cfg.url.as_str().trim_end_matches('/');
        let endpoint = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .unwrap_or_else(|_| cfg.url.clone());
        OpenAiClient {
            cfg: cfg.clone(),
            endpoint,
            http,
        }
    }

    async fn run(&self, call: &UpstreamCall) -> Result<UpstreamAnswer, CallFailure> {
        let body = json!({"model": call.model,
                          "messages": [{"role": "user", "content": call.prompt}],
                          "temperature": call.temperature, "max_tokens": call.max_tokens});
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .json(&body)
            .timeout(call.timeout);
        if let Some(token) = &self.cfg.auth_token {
            req = req.bearer_auth(token);
        }
        if let Some(tp) = &call.traceparent {
            req = req.header("traceparent", tp);
        }
        let t = call.timeout.as_secs_f64();
        let resp = req
            .send()
            .await
            .map_err(|e| from_transport(&self.cfg, &e, t))?;
        if !resp.status().is_success() {
            // OpenAI-compatible servers explain themselves in `{"error": {"message"}}`.
            let detail = |text: &str| {
                serde_json::from_str::<Value>(text).ok().and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            };
            return Err(from_error_answer(&self.cfg, resp, detail).await);
        }
        let body = read_bounded(resp, self.cfg.max_response_bytes)
            .await
            .map_err(|e| from_body(&self.cfg, e, t))?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            provider_fault(failure(
                &self.cfg,
                ErrorCode::ProviderBadResponse,
                Stage::Response,
                format!("answer is not JSON: {e}"),
            ))
        })?;
        let Some(choice) = v.pointer("/choices/0") else {
            return Err(provider_fault(failure(
                &self.cfg,
                ErrorCode::ProviderBadResponse,
                Stage::Response,
                "answer has no choices[0]".into(),
            )));
        };
        Ok(UpstreamAnswer {
            text: choice
                .pointer("/message/content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            tokens_generated: v
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64),
            prompt_tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
            region_label: None,
            receipt: None,
        })
    }
}

impl ProviderClient for OpenAiClient {
    fn call<'a>(&'a self, call: &'a UpstreamCall) -> CallFuture<'a> {
        Box::pin(self.run(call))
    }
}
