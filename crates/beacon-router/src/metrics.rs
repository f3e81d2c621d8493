//! Prometheus metrics of the router, rendered by hand in the text format: counters and
//! histograms keyed by small label sets (providers × regions × models × outcomes).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds in seconds: sub-millisecond (router overhead) to minutes
/// (GPU cold starts).
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0,
    180.0, 600.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if v <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
}

/// The router's metrics registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// One upstream call and its outcome (`success`, `empty` or an error code).
    pub fn request(
        &self,
        provider: &str,
        region: &str,
        model: &str,
        outcome: &str,
        took: Duration,
    ) {
        let base: Labels = vec![
            ("provider", provider.to_string()),
            ("region", region.to_string()),
            ("model", model.to_string()),
        ];
        let mut with_outcome = base.clone();
        with_outcome.push(("outcome", outcome.to_string()));
        self.with(|m| {
            *m.counters
                .entry(("beacon_router_requests_total", with_outcome))
                .or_default() += 1;
            m.histograms
                .entry(("beacon_router_request_duration_seconds", base))
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    /// Router time minus upstream time for one `/inference` request.
    pub fn overhead(&self, took: Duration) {
        self.with(|m| {
            m.histograms
                .entry(("beacon_router_overhead_seconds", Vec::new()))
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    pub fn queue_wait(&self, provider: &str, took: Duration) {
        self.with(|m| {
            m.histograms
                .entry((
                    "beacon_router_queue_wait_seconds",
                    vec![("provider", provider.to_string())],
                ))
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    pub fn probe(&self, provider: &str, outcome: &str) {
        let labels = vec![
            ("provider", provider.to_string()),
            ("outcome", outcome.to_string()),
        ];
        self.with(|m| {
            *m.counters
                .entry(("beacon_router_probes_total", labels))
                .or_default() += 1
        });
    }

    /// Sets a gauge (provider state, in flight) just before rendering.
    pub fn gauge(&self, name: &'static str, labels: Labels, value: f64) {
        self.with(|m| {
            m.gauges.insert((name, labels), value);
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::with_capacity(4096);
            let mut last = "";
            for ((name, labels), v) in &m.counters {
                header(&mut out, &mut last, name, "counter");
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
            for ((name, labels), v) in &m.gauges {
                header(&mut out, &mut last, name, "gauge");
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
            for ((name, labels), h) in &m.histograms {
                header(&mut out, &mut last, name, "histogram");
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let le = bound.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        fmt_labels(labels, Some(&le)),
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    fmt_labels(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
            }
            out
        })
    }
}

fn header(out: &mut String, last: &mut &'static str, name: &'static str, kind: &str) {
    if *last != name {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *last = name;
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("p", "eu-west", "m", "success", Duration::from_millis(3));
        m.request("p", "eu-west", "m", "success", Duration::from_millis(30));
        m.probe("p", "ok");
        let text = m.render();
        assert!(text.contains("beacon_router_requests_total{provider=\"p\",region=\"eu-west\",model=\"m\",outcome=\"success\"} 2"), "{text}");
        assert!(text.contains("beacon_router_request_duration_seconds_count{provider=\"p\",region=\"eu-west\",model=\"m\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("# TYPE beacon_router_probes_total counter"));
    }
}
