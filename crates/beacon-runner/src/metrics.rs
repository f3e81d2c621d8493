//! The runner's metric catalogue: every name `/metrics` can show, with its labels and
//! what it answers for an operator (docs/metrics.md is the same table for people).

use beacon_service::metrics::{Kind, Metric, Registry};

/// The runner's metrics, in docs/metrics.md's order.
pub const CATALOGUE: &[Metric] = &[
    Metric {
        name: "beacon_runner_jobs_finished_total",
        kind: Kind::Counter,
        labels: &["status"],
        help: "Jobs that reached a terminal status, by status: is work completing, and how much of it fails.",
    },
    Metric {
        name: "beacon_runner_executions_finished_total",
        kind: Kind::Counter,
        labels: &["status"],
        help: "Executions (prompt x model x region) that reached a terminal status, by status.",
    },
    Metric {
        name: "beacon_runner_attempt_failures_total",
        kind: Kind::Counter,
        labels: &["code"],
        help: "Failed router calls by failure code: what is going wrong upstream, before retries hide it.",
    },
    Metric {
        name: "beacon_runner_router_call_seconds",
        kind: Kind::Histogram,
        labels: &["region"],
        help: "Duration of one call to the router, by region: how long answers take end to end.",
    },
    Metric {
        name: "beacon_runner_report_computations_total",
        kind: Kind::Counter,
        labels: &[],
        help: "Job reports computed (not served from the report cache): how much report work the cache saves.",
    },
    Metric {
        name: "beacon_runner_jobs_running",
        kind: Kind::Gauge,
        labels: &[],
        help: "Jobs this instance is running now: its share of the load.",
    },
    Metric {
        name: "beacon_runner_judge_calls_total",
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Calls of the optional judge model by outcome (labelled, unparsed, transient_failure, refused): what the judge costs and whether it works.",
    },
    Metric {
        name: "beacon_runner_breaker_state",
        kind: Kind::Gauge,
        labels: &["state"],
        help: "1 for the router circuit breaker's current state (closed, open, half_open), 0 for the others: open means the runner cannot reach the router.",
    },
];

/// A registry described from [`CATALOGUE`].
pub fn registry() -> Registry {
    Registry::new(CATALOGUE)
}
