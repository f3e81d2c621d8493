//! Provider clients: one trait, one implementation per upstream contract (Modal web
//! endpoints, OpenAI-compatible servers). A client turns one call into an answer or a
//! [`Failure`] that says whether the provider or the request was at fault. Every body
//! a client reads is bounded (`body`).

mod modal;
mod openai;
mod outcome;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use beacon_core::Failure;
use serde_json::Value;

pub use modal::ModalClient;
pub use openai::OpenAiClient;

use crate::config::{ProviderConfig, ProviderKind};

/// One inference to send upstream.
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    /// The model name the provider knows.
    pub model: String,
    pub prompt: String,
    pub temperature: f64,
    pub max_tokens: u32,
    /// The whole call, redirects included, must finish within this.
    pub timeout: Duration,
    /// The W3C `traceparent` sent with the call (the upstream span's, see `spans`).
    pub traceparent: Option<String>,
}

/// A provider's answer. An empty `text` is still an answer.
#[derive(Debug, Clone, Default)]
pub struct UpstreamAnswer {
    pub text: String,
    pub tokens_generated: Option<u64>,
    /// Prompt tokens, when the provider reports them.
    pub prompt_tokens: Option<u64>,
    /// The region the provider says it is in (Modal's APAC app: `asia-southeast`).
    pub region_label: Option<String>,
    pub receipt: Option<Value>,
}

/// Why a call failed, and who is to blame.
#[derive(Debug, Clone)]
pub struct CallFailure {
    pub failure: Failure,
    /// The request was at fault (a 4xx it caused, a validation error): no health
    /// penalty, no failover, no retry.
    pub request_caused: bool,
}

pub type CallFuture<'a> =
    Pin<Box<dyn Future<Output = Result<UpstreamAnswer, CallFailure>> + Send + 'a>>;

/// Something that answers prompts.
pub trait ProviderClient: Send + Sync {
    fn call<'a>(&'a self, call: &'a UpstreamCall) -> CallFuture<'a>;
}

/// Builds the client a provider's `kind` asks for.
pub fn client_for(cfg: &ProviderConfig, http: reqwest::Client) -> Box<dyn ProviderClient> {
    match cfg.kind {
        ProviderKind::Modal => Box::new(ModalClient::new(cfg, http)),
        ProviderKind::Openai => Box::new(OpenAiClient::new(cfg, http)),
    }
}

/// The HTTP client every provider client shares: no automatic redirects (Modal's 303
/// is followed by hand within the deadline) and pooled connections.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
