//! The provider registry: each configured provider with its client, its health, and
//! its concurrency slots. Shared by routing, probes and the read-only routes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use beacon_core::Failure;
use beacon_core::wire::{ProviderEntry, ProviderState};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{Config, HealthConfig, ProviderConfig};
use crate::health::{Admission, Health};
use crate::provider::{ProviderClient, client_for, http_client};

/// One provider and everything the router tracks about it.
pub struct Provider {
    pub cfg: ProviderConfig,
    pub client: Box<dyn ProviderClient>,
    health: Mutex<Health>,
    slots: Arc<Semaphore>,
    in_flight: AtomicU32,
}

/// A held concurrency slot; counts the call as in flight until dropped.
pub struct Slot<'a> {
    provider: &'a Provider,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.provider.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Provider {
    fn new(cfg: ProviderConfig, http: reqwest::Client) -> Provider {
        Provider {
            client: client_for(&cfg, http),
            slots: Arc::new(Semaphore::new(cfg.max_concurrency as usize)),
            health: Mutex::new(Health::new()),
            in_flight: AtomicU32::new(0),
            cfg,
        }
    }

    /// Runs `f` on the health record. The lock is never held across an await.
    pub fn with_health<T>(&self, f: impl FnOnce(&mut Health) -> T) -> T {
        let mut guard = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    pub fn serves(&self, model: &str) -> bool {
        self.cfg.upstream_model(model).is_some()
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Slot {
            provider: self,
            _permit: permit,
        }
    }

    /// A free slot now, if there is one.
    pub fn try_slot(&self) -> Option<Slot<'_>> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| self.slot(p))
    }

    /// Waits up to `wait` for a slot.
    pub async fn wait_slot(&self, wait: Duration) -> Option<Slot<'_>> {
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(self.slot(permit)),
            _ => None,
        }
    }

    pub fn admit(&self, now: Instant) -> Admission {
        self.with_health(|h| h.admit(now))
    }

    pub fn record_success(&self, cfg: &HealthConfig, latency: Duration, probe: bool) {
        self.with_health(|h| h.record_success(cfg, Instant::now(), latency, probe));
    }

    pub fn record_failure(&self, cfg: &HealthConfig, failure: Failure, probe: bool) {
        self.with_health(|h| h.record_failure(cfg, Instant::now(), failure, probe));
    }

    /// The `/providers` entry: the original fields plus the evidence behind the state.
    pub fn entry(&self, cfg: &HealthConfig) -> ProviderEntry {
        let now = Instant::now();
        let in_flight = self.in_flight();
        self.with_health(|h| {
            let state = h.state();
            ProviderEntry {
                name: self.cfg.name.clone(),
                kind: self.cfg.kind.as_str().to_string(),
                region: self.cfg.region.to_string(),
                healthy: state == ProviderState::Healthy,
                state,
                reason: Some(h.reason().to_string()),
                since: Some(rfc3339(h.since())),
                models: self.cfg.models.iter().map(|m| m.id.to_string()).collect(),
                cost_per_second: self.cfg.cost_per_second,
                avg_latency: h.avg_latency(),
                p95_latency: h.latency_quantile(0.95),
                success_rate: h.success_rate(),
                in_flight,
                max_concurrency: self.cfg.max_concurrency,
                last_health_check: h.last_probe_at.map_or(0, |t| t.timestamp()),
                probe_age_seconds: h
                    .last_probe_at
                    .map(|t| (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0),
                stale: h.is_stale(cfg, now),
                consecutive_failures: h.consecutive_failures(),
                // `/providers` never shows endpoint URLs, not even redacted ones.
                last_failure: h.last_failure.clone().map(|mut f| {
                    f.url = None;
                    f
                }),
            }
        })
    }
}

pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// All providers, in configuration order.
pub struct Registry {
    pub providers: Vec<Provider>,
}

impl Registry {
    pub fn new(config: &Config) -> Registry {
        let http = http_client();
        Registry {
            providers: config
                .providers
                .iter()
                .map(|p| Provider::new(p.clone(), http.clone()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.cfg.name == name)
    }
}
