//! Drill: OpenTelemetry traces across both services. An in-process OTLP/HTTP receiver
//! (`POST /v1/traces`, protobuf decoded with opentelemetry-proto) gets the spans of a
//! real router and a real runner child; a 2 questions × 2 models × 2 regions job runs
//! with eu-west broken (every call a 404). Checked: every attempt is one trace, the
//! runner's `execution` → `router_call` → the router's `inference` → `provider_attempt`
//! share its trace id with the right parents; the broken region's spans carry the
//! failure code and an error status; every provider call arrived with the
//! `traceparent` of its `provider_attempt` span; probes are traces of their own; the
//! runner's spans (held back by a long batch delay) arrive after its SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use beacon_drills::procs::Scratch;
use beacon_drills::{Fleet, RouterSettings, RunnerSettings, Shape, Sims, print_figures};
use beacon_sim::Faults;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtelStatus;
use prost::Message;
use serde_json::json;

const JOB: &str = "drill-traces";
const BROKEN: &str = "eu-west";
const HEALTHY: &str = "us-east";
/// The code the router gives a provider's 404.
const BROKEN_CODE: &str = "PROVIDER_HTTP_ERROR";

/// One span as the receiver got it, with its service's name.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    kind: i32,
    error: bool,
    attrs: BTreeMap<String, String>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The in-process OTLP/HTTP receiver: every span of every export request, in order.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    requests: Arc<Mutex<u64>>,
}

async fn export(State(rx): State<Receiver>, body: Bytes) -> impl IntoResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut got = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(Got {
                service: service.clone(),
                name: span.name,
                trace: hex::encode(span.trace_id),
                id: hex::encode(span.span_id),
                parent: hex::encode(span.parent_span_id),
                kind: span.kind,
                error: span
                    .status
                    .is_some_and(|s| s.code == OtelStatus::Error as i32),
                attrs: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv)))
                    .collect(),
            });
        }
    }
    rx.spans.lock().unwrap().extend(got);
    *rx.requests.lock().unwrap() += 1;
    let ok = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, ok)
}

impl Receiver {
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .layer(axum::middleware::map_response(
                |mut r: axum::response::Response| async move {
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/x-protobuf"),
                    );
                    r
                },
            ))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received (the router exports every 100 ms).
    async fn wait(&self, what: &str, limit: Duration, done: impl Fn(&[Got]) -> bool) {
        let start = Instant::now();
        while !done(&self.spans()) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn otel_env(endpoint: &str, delay_ms: u64) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), delay_ms.to_string()),
    ]
}

/// `name`'s spans with `parent` as their parent.
fn children<'a>(spans: &'a [Got], parent: &Got, name: &str) -> Vec<&'a Got> {
    spans
        .iter()
        .filter(|s| s.name == name && s.trace == parent.trace && s.parent == parent.id)
        .collect()
}

fn describe(s: &Got) -> String {
    let keys = [
        "execution_id",
        "region",
        "model",
        "attempt",
        "provider",
        "http.response.status_code",
        "outcome",
        "failure_code",
    ];
    let attrs: Vec<String> = keys
        .iter()
        .filter_map(|k| s.attr(k).map(|v| format!("{k}={v}")))
        .collect();
    format!(
        "{} [{}] span {} parent {}{} {}",
        s.name,
        s.service,
        s.id,
        if s.parent.is_empty() { "-" } else { &s.parent },
        if s.error { " ERROR" } else { "" },
        attrs.join(" ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_one_trace_across_runner_router_and_provider() {
    let began = Instant::now();
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let sims = Sims::start(&[HEALTHY, BROKEN], 41, |r| Faults {
        inference_broken: r == BROKEN,
        ..Faults::default()
    })
    .await
    .unwrap();
    // Never ejected: every attempt reaches its provider (ejection has its own drills).
    let router = RouterSettings {
        unhealthy_after: 1000,
        extra_env: otel_env(&endpoint, 100),
        ..RouterSettings::default()
    };
    let fleet = Fleet::start(sims, &router).await.unwrap();
    let scratch = Scratch::new("beacon-drill-traces").unwrap();
    let db_url = format!("sqlite://{}", scratch.path().join("runner.db").display());
    // A batch delay far past the drill: the runner's spans leave only at shutdown.
    let mut settings = RunnerSettings::fast("runner-traces");
    settings.extra_env = otel_env(&endpoint, 600_000);
    let mut runner = fleet.runner(&settings, &db_url).await.unwrap();

    let shape = Shape {
        questions: 2,
        models: vec!["llama3.2-1b".into(), "mistral-7b".into()],
        regions: vec![HEALTHY.into(), BROKEN.into()],
        runs: 1,
    };
    let spec = fleet
        .spec(
            JOB,
            &shape,
            // Half the cells fail by design: no early stop, so each broken cell ends
            // `failed` by its own attempt rather than `cancelled` by the job, whichever
            // order the answers are stored in.
            json!({"timeout": "2m", "provider_timeout": "20s", "min_success_rate": 0}),
        )
        .unwrap();
    runner.api.submit_json(&spec).await.unwrap();
    let state = runner
        .api
        .wait_terminal(JOB, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", runner.log_tail()));
    let executions = runner.api.executions(JOB).await.unwrap();
    let attempts: u64 = executions
        .iter()
        .map(|e| e["attempts"].as_u64().unwrap())
        .sum();
    let provider_calls = fleet.sims.live_calls();
    // The router's spans of every provider call arrive on its 100 ms schedule.
    let calls = provider_calls.len();
    receiver
        .wait(
            "the router's provider spans",
            Duration::from_secs(20),
            |s| s.iter().filter(|s| s.name == "provider_attempt").count() >= calls,
        )
        .await;
    let runner_before_sigterm = receiver
        .spans()
        .iter()
        .filter(|s| s.service == "beacon-runner")
        .count();
    runner.service.terminate().unwrap();
    let exit = runner
        .service
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();
    let runner_after_exit = receiver
        .spans()
        .iter()
        .filter(|s| s.service == "beacon-runner")
        .count();
    // The router's last inference spans end a moment after its provider spans.
    receiver
        .wait(
            "the router's inference spans",
            Duration::from_secs(20),
            |s| s.iter().filter(|s| s.name == "inference").count() as u64 >= attempts,
        )
        .await;
    let spans = receiver.spans();
    let requests = *receiver.requests.lock().unwrap();

    let roots: Vec<&Got> = spans.iter().filter(|s| s.name == "execution").collect();
    // One attempt's tree: execution → router_call → inference → provider_attempt(s).
    let tree = |root: &Got| -> Vec<String> {
        let mut out = vec![describe(root)];
        for call in children(&spans, root, "router_call") {
            out.push(format!("  {}", describe(call)));
            for inf in children(&spans, call, "inference") {
                out.push(format!("    {}", describe(inf)));
                for up in children(&spans, inf, "provider_attempt") {
                    out.push(format!("      {}", describe(up)));
                }
            }
        }
        out
    };
    for region in [HEALTHY, BROKEN] {
        if let Some(root) = roots.iter().find(|r| r.attr("region") == Some(region)) {
            println!("trace {} ({region}):", root.trace);
            for line in tree(root) {
                println!("  {line}");
            }
        }
    }
    let by_name = |n: &str| spans.iter().filter(|s| s.name == n).count().to_string();
    print_figures(
        "OpenTelemetry traces",
        &[
            ("executions", executions.len().to_string()),
            ("attempts (runner's store)", attempts.to_string()),
            ("spans received", spans.len().to_string()),
            ("export requests received", requests.to_string()),
            ("execution spans", by_name("execution")),
            ("router_call spans", by_name("router_call")),
            ("inference spans", by_name("inference")),
            ("provider_attempt spans", by_name("provider_attempt")),
            ("probe spans", by_name("probe")),
            ("provider calls", calls.to_string()),
            (
                "runner spans before SIGTERM",
                runner_before_sigterm.to_string(),
            ),
            ("runner spans after its exit", runner_after_exit.to_string()),
            ("final status", state.status.clone()),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    // The job: the healthy region answered, the broken one failed, once each.
    assert_eq!(executions.len(), 8);
    assert!(exit.success(), "a clean exit after SIGTERM: {exit}");
    for e in &executions {
        let want = if e["region"] == BROKEN {
            "failed"
        } else {
            "completed"
        };
        assert_eq!(e["status"], want, "{e}");
    }

    // Shutdown flush: nothing of the runner's left before SIGTERM, all of it after.
    assert_eq!(
        runner_before_sigterm, 0,
        "the runner's batch delay held its spans"
    );
    assert!(
        runner_after_exit > 0,
        "the runner flushed its spans at shutdown"
    );

    // Every attempt is one trace, rooted in the runner's execution span.
    assert_eq!(
        roots.len() as u64,
        attempts,
        "one execution span per attempt"
    );
    let mut traces: Vec<&str> = roots.iter().map(|r| r.trace.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(
        traces.len(),
        roots.len(),
        "each attempt has a trace of its own"
    );
    let by_id: HashMap<&str, &Got> = executions
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .filter_map(|id| {
            roots
                .iter()
                .find(|r| r.attr("execution_id") == Some(id))
                .map(|r| (id, *r))
        })
        .collect();
    assert_eq!(
        by_id.len(),
        executions.len(),
        "every execution has its trace"
    );

    let upstream_traceparents: Vec<String> = provider_calls
        .iter()
        .map(|c| c.call.traceparent.clone().unwrap_or_default())
        .collect();
    for e in &executions {
        let root = by_id[e["id"].as_str().unwrap()];
        let broken = e["region"] == BROKEN;
        let lines = tree(root).join("\n");
        assert_eq!(root.service, "beacon-runner");
        assert!(root.parent.is_empty(), "a root span: {lines}");
        assert_eq!(root.attr("job_id"), Some(JOB));
        assert_eq!(root.attr("question_id"), e["question_id"].as_str());
        assert_eq!(root.attr("model"), e["model_id"].as_str());
        assert_eq!(root.attr("region"), e["region"].as_str());
        assert_eq!(root.attr("attempt"), Some("1"));
        let [call] = children(&spans, root, "router_call")[..] else {
            panic!("one router call per attempt:\n{lines}");
        };
        assert_eq!(call.kind, SpanKind::Client as i32);
        let [inference] = children(&spans, call, "inference")[..] else {
            panic!("the router's span continues the runner's call:\n{lines}");
        };
        assert_eq!(inference.service, "beacon-router");
        assert_eq!(inference.kind, SpanKind::Server as i32);
        let [upstream] = children(&spans, inference, "provider_attempt")[..] else {
            panic!("one provider attempt (never ejected):\n{lines}");
        };
        assert_eq!(upstream.kind, SpanKind::Client as i32);
        assert_eq!(
            upstream.attr("provider"),
            Some(&*format!("sim-{}", e["region"].as_str().unwrap()))
        );
        assert_eq!(upstream.attr("region"), e["region"].as_str());
        // Nothing else in the trace.
        let in_trace = spans.iter().filter(|s| s.trace == root.trace).count();
        assert_eq!(in_trace, 4, "only the attempt's spans:\n{lines}");
        // The provider received the provider_attempt span's context.
        let sent = format!("00-{}-{}-01", upstream.trace, upstream.id);
        assert_eq!(
            upstream_traceparents.iter().filter(|t| **t == sent).count(),
            1,
            "the provider got traceparent {sent}: {upstream_traceparents:?}"
        );
        if broken {
            for s in [root, call, inference, upstream] {
                assert_eq!(s.attr("failure_code"), Some(BROKEN_CODE), "{}", describe(s));
                assert!(s.error, "error status: {}", describe(s));
            }
            assert_eq!(upstream.attr("http.response.status_code"), Some("404"));
            assert_eq!(root.attr("outcome"), Some("failed"));
        } else {
            for s in [root, call, inference, upstream] {
                assert_eq!(s.attr("failure_code"), None, "{}", describe(s));
                assert!(!s.error, "no error: {}", describe(s));
            }
            assert_eq!(upstream.attr("http.response.status_code"), Some("200"));
            assert_eq!(call.attr("http.response.status_code"), Some("200"));
            assert_eq!(root.attr("outcome"), Some("answered"));
        }
    }
    assert_eq!(calls as u64, attempts, "one provider call per attempt");

    // Probes are traces of their own, never inside an attempt's.
    let probes: Vec<&Got> = spans.iter().filter(|s| s.name == "probe").collect();
    assert!(probes.len() >= 2, "the startup probe of each provider");
    for p in &probes {
        assert!(p.parent.is_empty(), "{}", describe(p));
        assert!(!traces.contains(&p.trace.as_str()), "{}", describe(p));
        if p.attr("region") == Some(BROKEN) {
            assert_eq!(p.attr("failure_code"), Some(BROKEN_CODE));
        }
    }

    drop(runner);
    fleet.shutdown().await;
}
