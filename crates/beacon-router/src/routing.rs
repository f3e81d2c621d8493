//! Routing one inference: validate, resolve the region, order the candidates (healthy
//! before unknown, never ejected or drained), take a concurrency slot, call, and fail
//! over to the next provider of the same region on a provider-side failure, all within
//! the request's deadline. Other regions only when the request allows it.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::wire::{
    Candidate, EMPTY_MODEL_RESPONSE, InferenceMetadata, InferenceRequest, InferenceResponse,
    ProviderState,
};
use beacon_core::{ErrorCode, Failure, ModelId, Region, Stage};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::HealthConfig;
use crate::health::Admission;
use crate::metrics::Metrics;
use crate::provider::UpstreamCall;
use crate::registry::{Provider, Registry, rfc3339};
use crate::spans;

/// The answer to one `/inference` call, with its HTTP status.
#[derive(Debug, Clone)]
pub struct Routed {
    pub status: u16,
    pub body: InferenceResponse,
    /// Time spent waiting on providers (for the overhead metric).
    pub upstream: Duration,
}

/// Releases an ejected provider's trial slot if the call ends without a verdict.
struct TrialGuard<'a> {
    provider: &'a Provider,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.provider.with_health(|h| h.end_trial_without_verdict());
        }
    }
}

/// Chooses providers and calls them.
pub struct Router {
    pub registry: Arc<Registry>,
    pub health: HealthConfig,
    pub regions: Vec<Region>,
    pub metrics: Arc<Metrics>,
}

impl Router {
    /// Routes a request; never panics, always answers with a status and a body.
    /// `incoming`: the caller's `traceparent`, forwarded upstream when trace export is
    /// off (with it on, each upstream call sends its own span's).
    pub async fn infer(&self, req: &InferenceRequest, incoming: Option<&str>) -> Routed {
        match self.plan(req) {
            Ok((candidates, deadline)) => self.run(req, incoming, candidates, deadline).await,
            Err(failure) => refuse(failure, Vec::new()),
        }
    }

    /// Validates the request and orders its candidates.
    fn plan<'a>(&'a self, req: &InferenceRequest) -> Result<(Vec<&'a Provider>, Instant), Failure> {
        let invalid = |msg: String| Failure::new(ErrorCode::InvalidRequest, Stage::Validation, msg);
        ModelId::parse(&req.model).map_err(|e| invalid(e.to_string()))?;
        if req.prompt.trim().is_empty() {
            return Err(invalid("prompt is empty".into()));
        }
        if !(0.0..=2.0).contains(&req.temperature) {
            return Err(invalid("temperature must be in [0, 2]".into()));
        }
        if req.max_tokens == 0 || req.max_tokens > 32_768 {
            return Err(invalid("max_tokens must be in [1, 32768]".into()));
        }
        if req.timeout_ms == Some(0) {
            return Err(invalid("timeout_ms must be at least 1".into()));
        }
        let region = match &req.region_preference {
            Some(r) => Some(self.resolve_region(r)?),
            None if req.allow_region_fallback => None,
            None => {
                return Err(invalid(
                    "region_preference is required (or set allow_region_fallback)".into(),
                ));
            }
        };
        let serving = |p: &&Provider| p.serves(&req.model);
        let now = Instant::now();
        let mut local: Vec<&Provider> = self
            .registry
            .providers
            .iter()
            .filter(|p| region.as_ref().is_none_or(|r| &p.cfg.region == r))
            .filter(serving)
            .collect();
        self.order(&mut local, req.cost_priority, now);
        if req.allow_region_fallback {
            let mut others: Vec<&Provider> = self
                .registry
                .providers
                .iter()
                .filter(|p| region.as_ref().is_some_and(|r| &p.cfg.region != r))
                .filter(serving)
                .collect();
            self.order(&mut others, req.cost_priority, now);
            local.extend(others);
        }
        if local.is_empty() {
            let where_ = region
                .as_ref()
                .map_or("any region".to_string(), |r| r.to_string());
            return Err(Failure::new(
                ErrorCode::NoProviderForModel,
                Stage::Routing,
                format!("no provider in {where_} serves model {}", req.model),
            )
            .with_model(&req.model)
            .with_region(&where_)
            .with_transient(false));
        }
        let longest = local
            .iter()
            .map(|p| p.cfg.request_timeout)
            .max()
            .unwrap_or_default();
        let budget = req.timeout_ms.map_or(longest, Duration::from_millis);
        Ok((local, now + budget))
    }

    fn resolve_region(&self, raw: &str) -> Result<Region, Failure> {
        let unknown = |why: String| {
            Failure::new(ErrorCode::UnknownRegion, Stage::Validation, why).with_transient(false)
        };
        let region = Region::parse(raw).map_err(|e| unknown(e.to_string()))?;
        if !self.regions.contains(&region) {
            let known: Vec<&str> = self.regions.iter().map(Region::as_str).collect();
            return Err(unknown(format!(
                "no provider is configured in region {region}; configured: {}",
                known.join(", ")
            )));
        }
        Ok(region)
    }

    /// Healthy, then unknown, then due-for-trial; unroutable ones last (they will be
    /// refused with their reason). Within a group: cost or latency, then fewest in flight.
    fn order(&self, list: &mut [&Provider], cost_priority: bool, now: Instant) {
        list.sort_by(|a, b| {
            let key = |p: &Provider| {
                let (state, routable, latency) =
                    p.with_health(|h| (h.state(), h.is_routable(now), h.avg_latency()));
                let group = match (state, routable) {
                    (ProviderState::Healthy, _) => 0,
                    (ProviderState::Unknown, _) => 1,
                    (_, true) => 2,
                    _ => 3,
                };
                let cost = if cost_priority {
                    p.cfg.cost_per_second
                } else {
                    latency
                };
                (group, cost, p.in_flight())
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
        });
    }

    async fn run(
        &self,
        req: &InferenceRequest,
        incoming: Option<&str>,
        order: Vec<&Provider>,
        deadline: Instant,
    ) -> Routed {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut busy: Vec<&Provider> = Vec::new();
        let mut tally = Tally::default();
        for provider in &order {
            if let Some(reason) = provider.with_health(|h| h.refusal(Instant::now())) {
                candidates.push(candidate(provider, reason));
                continue;
            }
            let Some(slot) = provider.try_slot() else {
                busy.push(provider);
                continue;
            };
            let outcome = self
                .attempt(req, incoming, provider, deadline, &mut candidates)
                .await;
            drop(slot);
            if let Some(routed) = tally.absorb(outcome) {
                return routed;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Every free candidate failed or refused; wait for a busy one, best first.
        if let Some(provider) = busy.first() {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = provider.cfg.queue_timeout.min(left);
            let started = Instant::now();
            let slot = provider.wait_slot(wait).await;
            self.metrics
                .queue_wait(&provider.cfg.name, started.elapsed());
            match slot {
                Some(slot) => {
                    let outcome = self
                        .attempt(req, incoming, provider, deadline, &mut candidates)
                        .await;
                    drop(slot);
                    if let Some(routed) = tally.absorb(outcome) {
                        return routed;
                    }
                }
                None if tally.last_failure.is_none() => {
                    let f = Failure::new(
                        ErrorCode::Overloaded,
                        Stage::Queue,
                        format!(
                            "all {} candidate provider(s) busy; waited {:.1} s for a slot on {}",
                            busy.len(),
                            wait.as_secs_f64(),
                            provider.cfg.name
                        ),
                    )
                    .with_provider(&provider.cfg.name, provider.cfg.kind.as_str())
                    .with_region(provider.cfg.region.as_str())
                    .with_model(&req.model);
                    return refuse(f, candidates);
                }
                None => {}
            }
        }
        let mut routed = match tally.last_failure {
            Some(f) => refuse(f, candidates),
            None => {
                let names: Vec<String> = candidates
                    .iter()
                    .map(|c| format!("{} ({})", c.provider, c.reason))
                    .collect();
                let f = Failure::new(
                    ErrorCode::NoHealthyProvider,
                    Stage::Routing,
                    format!(
                        "no healthy provider for {}: {}",
                        req.model,
                        names.join("; ")
                    ),
                )
                .with_model(&req.model);
                let f = match order.first() {
                    Some(p) => f.with_region(p.cfg.region.as_str()),
                    None => f,
                };
                let now = Instant::now();
                let wait = order
                    .iter()
                    .filter_map(|p| p.with_health(|h| h.admissible_in(now)))
                    .min();
                // Every candidate was refused by health: the earliest end of an
                // ejection (or a running trial) is when asking again can help.
                let mut f = f;
                f.retry_after = wait.map(retry_after_secs);
                refuse(f, candidates)
            }
        };
        routed.body.metadata.attempts = tally.attempts;
        routed.upstream = tally.upstream;
        routed
    }

    /// Admits, calls and records one provider.
    async fn attempt(
        &self,
        req: &InferenceRequest,
        incoming: Option<&str>,
        provider: &Provider,
        deadline: Instant,
        candidates: &mut Vec<Candidate>,
    ) -> Attempt {
        let admission = provider.admit(Instant::now());
        if let Admission::Refused(reason) = admission {
            candidates.push(candidate(provider, reason));
            return Attempt::Skipped;
        }
        let mut trial = TrialGuard {
            provider,
            armed: admission == Admission::Trial,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let caller_bound = left < provider.cfg.request_timeout;
        let span = spans::provider_attempt(provider, &req.model);
        let call = UpstreamCall {
            model: provider
                .cfg
                .upstream_model(&req.model)
                .unwrap_or(&req.model)
                .to_string(),
            prompt: req.prompt.clone(),
            temperature: req.temperature,
            max_tokens: req.max_tokens,
            timeout: provider.cfg.request_timeout.min(left),
            traceparent: spans::upstream_traceparent(&span, incoming),
        };
        let started = Instant::now();
        let result = provider.client.call(&call).instrument(span.clone()).await;
        spans::upstream_ended(&span, &result);
        let spent = started.elapsed();
        let name = provider.cfg.name.as_str();
        let region = provider.cfg.region.as_str();
        match result {
            Ok(answer) => {
                trial.armed = false;
                provider.record_success(&self.health, spent, false);
                let outcome = if answer.text.trim().is_empty() {
                    "empty"
                } else {
                    "success"
                };
                self.metrics
                    .request(name, region, &req.model, outcome, spent);
                let secs = spent.as_secs_f64();
                let warnings = if answer.text.trim().is_empty() {
                    vec![EMPTY_MODEL_RESPONSE.to_string()]
                } else {
                    Vec::new()
                };
                Attempt::Done(Routed {
                    status: 200,
                    upstream: spent,
                    body: InferenceResponse {
                        success: true,
                        response: Some(answer.text),
                        error: None,
                        error_code: None,
                        failure: None,
                        warnings,
                        provider_used: Some(name.to_string()),
                        inference_time: Some(secs),
                        cost_estimate: Some(secs * provider.cfg.cost_per_second),
                        metadata: InferenceMetadata {
                            provider_type: Some(provider.cfg.kind.as_str().to_string()),
                            region: Some(region.to_string()),
                            model: Some(req.model.clone()),
                            provider_region_label: Some(
                                answer.region_label.unwrap_or_else(|| region.to_string()),
                            ),
                            attempts: 0,
                            tokens_generated: answer.tokens_generated,
                            prompt_tokens: answer.prompt_tokens,
                            receipt: answer.receipt,
                            trace_id: req.trace_id.clone(),
                        },
                        candidates: Vec::new(),
                    },
                })
            }
            Err(cf) => {
                let failure = cf.failure.with_model(&req.model);
                self.metrics
                    .request(name, region, &req.model, failure.code.as_str(), spent);
                if cf.request_caused {
                    // The request's fault: no health penalty, no failover.
                    return Attempt::Done(refuse(failure, Vec::new()));
                }
                if failure.code == ErrorCode::ProviderTimeout && caller_bound {
                    // The caller's own `timeout_ms` ran out, not the provider's
                    // `request_timeout`: a tiny budget must not count against the
                    // provider's health (a caller could eject it for everyone).
                    let mut failure = failure;
                    failure.message = format!(
                        "the request's timeout_ms budget ({:.3} s left) ran out before the provider answered",
                        left.as_secs_f64()
                    );
                    return Attempt::Done(refuse(failure, Vec::new()));
                }
                trial.armed = false;
                provider.record_failure(&self.health, failure.clone(), false);
                candidates.push(candidate(
                    provider,
                    format!("call failed: {}", failure.message),
                ));
                Attempt::Failed(failure, spent)
            }
        }
    }
}

/// What a request's attempts so far add up to.
#[derive(Default)]
struct Tally {
    attempts: u32,
    upstream: Duration,
    last_failure: Option<Failure>,
}

impl Tally {
    /// Counts one attempt; returns the answer when the attempt settled the request.
    fn absorb(&mut self, outcome: Attempt) -> Option<Routed> {
        match outcome {
            Attempt::Skipped => None,
            Attempt::Done(mut routed) => {
                self.attempts += 1;
                routed.body.metadata.attempts = self.attempts;
                routed.upstream += self.upstream;
                Some(routed)
            }
            Attempt::Failed(f, spent) => {
                self.attempts += 1;
                self.upstream += spent;
                self.last_failure = Some(f);
                None
            }
        }
    }
}

enum Attempt {
    /// Refused by health; nothing was sent.
    Skipped,
    /// Finished: an answer, or a failure that must not fail over.
    Done(Routed),
    /// A provider-side failure: try the next candidate.
    Failed(Failure, Duration),
}

fn candidate(p: &Provider, reason: String) -> Candidate {
    p.with_health(|h| Candidate {
        provider: p.cfg.name.clone(),
        state: h.state(),
        reason,
        last_probe_at: h.last_probe_at.map(rfc3339),
        last_failure: h.last_failure.clone(),
        ejected_until: h.ejected_until().map(rfc3339),
    })
}

/// Shortest `retry_after` given: a client told "0.003 s" would only spin.
const MIN_RETRY_AFTER_MS: u128 = 100;

/// A wait as `retry_after` seconds: rounded up to the millisecond (never early), at
/// least [`MIN_RETRY_AFTER_MS`].
pub fn retry_after_secs(wait: Duration) -> f64 {
    let ms = wait.as_micros().div_ceil(1000).max(MIN_RETRY_AFTER_MS);
    ms as f64 / 1000.0
}

fn refuse(failure: Failure, candidates: Vec<Candidate>) -> Routed {
    let status = failure.code.http_status();
    let mut body = InferenceResponse::failed(failure);
    body.candidates = candidates;
    Routed {
        status,
        body,
        upstream: Duration::ZERO,
    }
}
