//! A small Prometheus registry rendered in the text exposition format: counters,
//! gauges and histograms keyed by a name and a short label set. Pure (no I/O), shared
//! by the router and the runner.

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

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

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

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
}

/// A metrics registry. Cheap enough for per-request use: one short lock per update.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics::Registry")
    }
}

impl Registry {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn inc(&self, name: &'static str, labels: Labels) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: Labels, n: u64) {
        self.with(|m| *m.counters.entry((name, labels)).or_default() += n);
    }

    pub fn observe(&self, name: &'static str, labels: Labels, took: Duration) {
        self.with(|m| {
            m.histograms
                .entry((name, labels))
                .or_default()
                .observe(took.as_secs_f64())
        });
    }

    pub fn set_gauge(&self, name: &'static str, labels: Labels, value: f64) {
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
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
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
    fn renders_counters_gauges_and_histograms() {
        let m = Registry::default();
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
        assert!(text.contains("# TYPE duration_seconds histogram"));
        assert!(text.contains("duration_seconds_bucket{provider=\"p\",le=\"0.005\"} 1"));
        assert!(text.contains("duration_seconds_count{provider=\"p\"} 1"));
        assert!(text.contains("in_flight{provider=\"a\\\"b\"} 2"), "{text}");
    }
}
