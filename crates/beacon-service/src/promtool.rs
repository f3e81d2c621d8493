//! `promtool check metrics` for both services' acceptance tests: the exposition a
//! service serves must parse and pass Prometheus's own lint with no warning. promtool
//! comes from Debian's `prometheus` package (.ci/run installs it); without it the check
//! is skipped loudly, and fails under CI or with BEACON_REQUIRE_PROMTOOL set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where Debian's `prometheus` package puts promtool.
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Pipes `exposition` to `promtool check metrics` and asserts exit 0 with no output
/// (promtool prints each lint warning). Returns false when promtool is missing and
/// the check was skipped.
pub fn assert_promtool_clean(service: &str, exposition: &str) -> bool {
    if !Path::new(PROMTOOL).exists() {
        let required = std::env::var_os("CI").is_some_and(|v| v != "false")
            || std::env::var_os("BEACON_REQUIRE_PROMTOOL").is_some();
        assert!(
            !required,
            "{PROMTOOL} is missing: the metrics lint needs promtool under CI (apt-get install -y --no-install-recommends prometheus)"
        );
        eprintln!(
            "\n{0}\nSKIPPED: promtool not installed, {service}'s /metrics not checked (apt-get install prometheus)\n{0}\n",
            "!".repeat(72)
        );
        return false;
    }
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on {service}'s /metrics: {:?}\n{said}\n--- exposition ---\n{exposition}",
        out.status.code()
    );
    true
}

/// Asserts that every metric of `catalogue` appears in `exposition` with its `# HELP`
/// and `# TYPE` lines, that only counters end in `_total` and every histogram is in
/// `_seconds`. Metrics named in `optional` may be absent (recorded only on some paths).
pub fn assert_follows_catalogue(
    exposition: &str,
    catalogue: &[crate::metrics::Metric],
    optional: &[&str],
) {
    use crate::metrics::Kind;
    for m in catalogue {
        if optional.contains(&m.name) && !exposition.contains(m.name) {
            continue;
        }
        assert!(
            exposition.contains(&format!("# HELP {} ", m.name)),
            "{} has no help text:\n{exposition}",
            m.name
        );
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert!(
            exposition.contains(&format!("# TYPE {} {kind}", m.name)),
            "{} is not a {kind}:\n{exposition}",
            m.name
        );
        assert_eq!(
            m.name.ends_with("_total"),
            m.kind == Kind::Counter,
            "{}: counters end in _total, nothing else does",
            m.name
        );
        if m.kind == Kind::Histogram {
            assert!(m.name.ends_with("_seconds"), "{}", m.name);
        }
    }
}

/// Asserts that `doc` (docs/metrics.md) has a table row for every metric of `catalogue`
/// naming each of its labels, so the catalogue an operator reads cannot drift.
pub fn assert_documented(doc: &str, catalogue: &[crate::metrics::Metric]) {
    for m in catalogue {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", m.name)))
            .unwrap_or_else(|| panic!("docs/metrics.md has no row for {}", m.name));
        for label in m.labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{}: label {label} undocumented",
                m.name
            );
        }
    }
}
