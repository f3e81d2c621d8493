//! The router's metrics: the catalogue of every name `/metrics` can show (docs/metrics.md
//! is the same table for people) and typed recording helpers on beacon-service's registry.

use std::time::Duration;

use beacon_service::metrics::{Kind, Labels, Metric, Registry};

/// The router's metrics, in docs/metrics.md's order.
pub const CATALOGUE: &[Metric] = &[
    Metric {
        name: "beacon_router_requests_total",
        kind: Kind::Counter,
        labels: &["provider", "region", "model", "outcome"],
        help: "Upstream calls by provider, region, model and outcome (success, empty or the failure code): which provider is failing, and how.",
    },
    Metric {
        name: "beacon_router_request_duration_seconds",
        kind: Kind::Histogram,
        labels: &["provider", "region", "model"],
        help: "Duration of one upstream call: which provider or model is slow.",
    },
    Metric {
        name: "beacon_router_overhead_seconds",
        kind: Kind::Histogram,
        labels: &[],
        help: "Router time minus upstream time for one /inference request: is the router itself slow.",
    },
    Metric {
        name: "beacon_router_queue_wait_seconds",
        kind: Kind::Histogram,
        labels: &["provider"],
        help: "Time a request waited for a provider's concurrency slot: is a provider saturated (compare with queue_timeout).",
    },
    Metric {
        name: "beacon_router_probes_total",
        kind: Kind::Counter,
        labels: &["provider", "outcome"],
        help: "Health probes by provider and outcome (ok, failed, skipped): is a provider answering its probes.",
    },
    Metric {
        name: "beacon_router_provider_state",
        kind: Kind::Gauge,
        labels: &["provider", "state"],
        help: "1 for a provider's current health state (unknown, healthy, unhealthy, draining), 0 for the others: which providers are routable.",
    },
    Metric {
        name: "beacon_router_in_flight",
        kind: Kind::Gauge,
        labels: &["provider"],
        help: "Upstream calls under way per provider: load against its max_concurrency.",
    },
    Metric {
        name: "beacon_router_idempotency_cache_bytes",
        kind: Kind::Gauge,
        labels: &[],
        help: "Bytes the Idempotency-Key answer cache holds: memory against [idempotency] max_bytes.",
    },
    Metric {
        name: "beacon_router_idempotency_cache_entries",
        kind: Kind::Gauge,
        labels: &[],
        help: "Answers the Idempotency-Key cache holds.",
    },
];

/// The router's metrics (docs/metrics.md). Label values come from the configuration
/// (provider, region, a model a provider serves) or fixed sets (outcome, state).
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            registry: Registry::new(CATALOGUE),
        }
    }
}

impl Metrics {
    /// One upstream call and its outcome (`success`, `empty` or an error code).
    pub fn request(
        &self,
        provider: &str,
        region: &str,
        model: &str,
        outcome: &str,
        took: Duration,
    ) {
        let base = vec![
            ("provider", provider.to_string()),
            ("region", region.to_string()),
            ("model", model.to_string()),
        ];
        let mut with_outcome = base.clone();
        with_outcome.push(("outcome", outcome.to_string()));
        self.registry
            .inc("beacon_router_requests_total", with_outcome);
        self.registry
            .observe("beacon_router_request_duration_seconds", base, took);
    }

    /// Router time minus upstream time for one `/inference` request.
    pub fn overhead(&self, took: Duration) {
        self.registry
            .observe("beacon_router_overhead_seconds", Vec::new(), took);
    }

    pub fn queue_wait(&self, provider: &str, took: Duration) {
        self.registry.observe(
            "beacon_router_queue_wait_seconds",
            vec![("provider", provider.to_string())],
            took,
        );
    }

    pub fn probe(&self, provider: &str, outcome: &str) {
        self.registry.inc(
            "beacon_router_probes_total",
            vec![
                ("provider", provider.to_string()),
                ("outcome", outcome.to_string()),
            ],
        );
    }

    /// Sets a gauge (provider state, in flight) just before rendering.
    pub fn gauge(&self, name: &'static str, labels: Labels, value: f64) {
        self.registry.set_gauge(name, labels, value);
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}
