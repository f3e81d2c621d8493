//! Each service's Prometheus metrics: a metrics-rs recorder owned by the service
//! instance (not the process-global one, so that several services in one test process
//! keep their own counts), described from the service's catalogue and rendered by
//! `metrics-exporter-prometheus` in the text format `promtool check metrics` reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Histogram bucket bounds in seconds: sub-millisecond (router overhead) to minutes
/// (GPU cold starts).
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0,
    180.0, 600.0,
];

/// Histogram observations kept between two drains. The exporter holds a histogram's
/// raw samples until it folds them into buckets (at each render, or here); a service
/// nobody scrapes would otherwise keep every sample.
const DRAIN_EVERY: u64 = 4096;

/// Label pairs of one series. Values must come from bounded sets (configured
/// providers, regions and models; fixed codes and states), never ids or free text.
pub type Labels = Vec<(&'static str, String)>;

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// A duration histogram in seconds on [`BUCKETS`].
    Histogram,
}

/// One metric of a service's catalogue (docs/metrics.md lists the same).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// The label names its series carry, in order.
    pub labels: &'static [&'static str],
    /// The `# HELP` text: what the metric answers for an operator.
    pub help: &'static str,
}

static META: Metadata<'static> = Metadata::new("beacon", Level::INFO, None);

/// A service's metrics registry. Cheap enough for per-request use.
pub struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    observed: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics::Registry")
    }
}

impl Registry {
    /// A registry whose metrics carry the catalogue's help texts and units.
    pub fn new(catalogue: &[Metric]) -> Registry {
        let builder = PrometheusBuilder::new();
        // The bounds are finite and sorted, the only errors set_buckets has; an empty
        // list would leave histograms rendered as summaries.
        let builder = match builder.set_buckets(&BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        for m in catalogue {
            let name = KeyName::from_const_str(m.name);
            let help = SharedString::const_str(m.help);
            match m.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, Some(Unit::Seconds), help),
            }
        }
        let handle = recorder.handle();
        Registry {
            recorder,
            handle,
            observed: AtomicU64::new(0),
        }
    }

    pub fn inc(&self, name: &'static str, labels: Labels) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: Labels, n: u64) {
        self.recorder
            .register_counter(&key(name, labels), &META)
            .increment(n);
    }

    pub fn observe(&self, name: &'static str, labels: Labels, took: Duration) {
        self.recorder
            .register_histogram(&key(name, labels), &META)
            .record(took.as_secs_f64());
        if self.observed.fetch_add(1, Ordering::Relaxed) % DRAIN_EVERY == DRAIN_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    pub fn set_gauge(&self, name: &'static str, labels: Labels, value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &META)
            .set(value);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn key(name: &'static str, labels: Labels) -> Key {
    let labels: Vec<Label> = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect();
    Key::from_parts(name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOGUE: &[Metric] = &[
        Metric {
            name: "requests_total",
            kind: Kind::Counter,
            labels: &["provider", "outcome"],
            help: "Requests by outcome.",
        },
        Metric {
            name: "duration_seconds",
            kind: Kind::Histogram,
            labels: &["provider"],
            help: "How long requests take.",
        },
        Metric {
            name: "in_flight",
            kind: Kind::Gauge,
            labels: &["provider"],
            help: "Requests under way.",
        },
    ];

    #[test]
    fn renders_counters_gauges_and_histograms_with_help() {
        let m = Registry::new(CATALOGUE);
        let l = || {
            vec![
                ("provider", "p".to_string()),
                ("outcome", "success".to_string()),
            ]
        };
        m.inc("requests_total", l());
        m.inc("requests_total", l());
        m.observe(
            "duration_seconds",
            vec![("provider", "p".into())],
            Duration::from_millis(3),
        );
        m.set_gauge("in_flight", vec![("provider", "a\"b".into())], 2.0);
        let text = m.render();
        assert!(
            text.contains("requests_total{provider=\"p\",outcome=\"success\"} 2"),
            "{text}"
        );
        assert!(text.contains("# HELP requests_total Requests by outcome."));
        assert!(text.contains("# TYPE duration_seconds histogram"));
        assert!(text.contains("duration_seconds_bucket{provider=\"p\",le=\"0.005\"} 1"));
        assert!(text.contains("duration_seconds_count{provider=\"p\"} 1"));
        assert!(text.contains("in_flight{provider=\"a\\\"b\"} 2"), "{text}");
    }

    #[test]
    fn two_registries_keep_their_own_counts() {
        let (a, b) = (Registry::new(CATALOGUE), Registry::new(CATALOGUE));
        a.inc("requests_total", Vec::new());
        assert!(a.render().contains("requests_total 1"));
        assert!(!b.render().contains("requests_total"));
    }

    #[test]
    fn many_observations_are_all_counted_across_drains() {
        let m = Registry::new(CATALOGUE);
        for _ in 0..(DRAIN_EVERY * 2 + 5) {
            m.observe("duration_seconds", Vec::new(), Duration::from_millis(1));
        }
        let want = format!("duration_seconds_count {}", DRAIN_EVERY * 2 + 5);
        assert!(m.render().contains(&want), "{}", m.render());
    }
}
