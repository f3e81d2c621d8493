//! The router's metrics, by name, on beacon-core's Prometheus registry.

use std::time::Duration;

use beacon_core::metrics::Registry;

/// The router's metrics (names in router.md).
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
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
    pub fn gauge(&self, name: &'static str, labels: beacon_core::metrics::Labels, value: f64) {
        self.registry.set_gauge(name, labels, value);
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}
