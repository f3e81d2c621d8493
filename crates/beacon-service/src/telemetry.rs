//! OpenTelemetry traces for both services, and the log subscriber they ride on. The
//! exporter (OTLP over HTTP/protobuf) is built only when an OTLP endpoint is configured
//! by the standard variables and `OTEL_SDK_DISABLED` is not `true`; otherwise no
//! exporter exists and spans stay in-process `tracing` spans. Export is batched on the
//! tokio runtime (a full queue drops spans, a request never waits for a collector),
//! and [`Telemetry::shutdown`] flushes within a bounded time after the server stopped.
//! Also: the W3C `traceparent` of a span (to send) and a span continued from one (received).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_opentelemetry::{OpenTelemetrySpanExt, OtelData};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use crate::{ConfigError, config_error};

/// Variables that name the OTLP trace endpoint; with neither set, tracing export is off.
pub const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// How long a binary waits for its last spans to be exported at shutdown.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// The only OTLP protocol this build speaks (no gRPC).
const HTTP_PROTOBUF: &str = "http/protobuf";

/// The trace pipeline of a running binary: call [`Telemetry::shutdown`] once the server
/// has stopped, so the spans of its last requests leave the process.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes the queued spans and stops the exporter, waiting at most `within`. The
    /// SDK's shutdown blocks its thread until the batch task answers, so it runs on a
    /// blocking thread; past `within` the process goes on without it.
    pub async fn shutdown(self, within: Duration) {
        let Some(provider) = self.provider else {
            return;
        };
        let job = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within));
        match tokio::time::timeout(within, job).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces: exporter shutdown failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "traces: exporter shutdown task failed"),
            Err(_) => tracing::warn!(
                "traces: the exporter did not flush within {:.1} s; queued spans are lost",
                within.as_secs_f64()
            ),
        }
    }
}

/// The tracer provider the environment asks for: `None` when no OTLP endpoint is set or
/// `OTEL_SDK_DISABLED=true`. The exporter and the SDK read the rest of the standard
/// variables themselves (endpoint, headers, timeout, `OTEL_TRACES_SAMPLER` and its
/// argument, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`). `OTEL_SERVICE_NAME` wins over
/// `service`. Must run inside a tokio runtime (the batch task is spawned on it).
pub fn tracer_provider(
    service: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, ConfigError> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    // The variable the exporter will use (the traces one wins), named in its errors.
    let Some(endpoint_var) = ENDPOINT_VARS.iter().find(|k| set(k).is_some()) else {
        return Ok(None);
    };
    // The exporter would quietly fall back to localhost:4318 on a URL it cannot parse.
    let endpoint = set(endpoint_var).unwrap_or_default();
    if !reqwest::Url::parse(endpoint.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(config_error(
            *endpoint_var,
            format!("{endpoint:?} is not an http(s) URL"),
        ));
    }
    for key in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(key).filter(|p| p.trim() != HTTP_PROTOBUF) {
            return Err(config_error(
                key,
                format!("{p:?} is not supported: Beacon exports traces as {HTTP_PROTOBUF}"),
            ));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|e| config_error(*endpoint_var, e.to_string()))?;
    // Batching on the tokio runtime: span ends only enqueue (dropped when the queue,
    // OTEL_BSP_MAX_QUEUE_SIZE, is full); the export runs on its own task.
    let batch = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource(service, env))
        .build();
    Ok(Some(provider))
}

/// The detected resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), with `service`
/// as the name when neither names one (the SDK's fallback is `unknown_service`).
fn resource(service: &str, env: &dyn Fn(&str) -> Option<String>) -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    if named {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name(service.to_string())
            .build()
    }
}

/// Logs to stderr (stdout is reserved for the `listening on` line; plain text is
/// coloured only when stderr is a terminal) and, when a tracer
/// provider is given, turns `tracing` spans at INFO and above into OpenTelemetry spans.
/// `json`: one JSON object per line, with `trace_id`/`span_id` while such a span is
/// current. `filter` (RUST_LOG) applies to the log lines only, so a quiet log still
/// gets full traces.
pub fn subscriber<W>(
    json: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    provider: Option<&SdkTracerProvider>,
    service: &str,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let otel = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service.to_string()))
            .with_filter(LevelFilter::INFO)
    });
    let registry = tracing_subscriber::registry().with(otel);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log: Box<dyn Layer<_> + Send + Sync> = if json {
        Box::new(json_log(writer).with_filter(filter))
    } else {
        // A log line that cannot be written (stderr redirected to a file on a full
        // disk) is dropped. With internal-error reporting on, the subscriber would
        // `eprintln!` about it, which panics when stderr fails, killing whatever task
        // was logging: a full disk stalled every job that way.
        // Colours only for a terminal: escape codes in a log file are noise to read
        // and grep, and formatting them was measurable per request.
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi)
                .log_internal_errors(false)
                .with_filter(filter),
        )
    };
    registry.with(log)
}

/// The JSON line layer: level, fields, target, the current span and its parents (so a
/// line says which job and execution it belongs to), and the OTel ids of the current span.
fn json_log<S, W>(writer: W) -> json_subscriber::fmt::Layer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layer = json_subscriber::fmt::layer()
        .with_writer(writer)
        .log_internal_errors(false)
        .with_current_span(true)
        .with_span_list(true);
    let inner = layer.inner_layer_mut();
    inner.add_from_extension::<OtelData, _, _>("trace_id", |d| d.trace_id().map(|t| t.to_string()));
    inner.add_from_extension::<OtelData, _, _>("span_id", |d| d.span_id().map(|s| s.to_string()));
    layer
}

/// Installs the W3C TraceContext propagator and returns the exporting pipeline the
/// environment asks for (see [`tracer_provider`]) with the subscriber on top.
pub fn install(
    json: bool,
    filter: tracing_subscriber::EnvFilter,
    service: &str,
) -> Result<Telemetry, ConfigError> {
    let env = |k: &str| std::env::var(k).ok();
    let provider = tracer_provider(service, &env)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let sub = subscriber(json, filter, std::io::stderr, provider.as_ref(), service);
    // A second install in one process (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(sub);
    Ok(Telemetry { provider })
}

/// The W3C `traceparent` of `span`'s OpenTelemetry context, or `None` when the span is
/// not an OpenTelemetry span (export off).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Continues `span` from a received `traceparent` (ignored when absent or malformed:
/// the span then starts a trace of its own). Call before the span is first entered.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier = HashMap::from([("traceparent".to_string(), tp.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Marks `span` as failed with `code` (its `failure_code` field, declared empty at
/// creation) and `message` (the OpenTelemetry status description).
pub fn record_failure(span: &tracing::Span, code: &str, message: &str) {
    span.record("failure_code", code);
    span.set_status(opentelemetry::trace::Status::error(message.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn without_an_endpoint_no_exporter_is_built() {
        let none = |_: &str| None;
        assert!(tracer_provider("beacon-test", &none).unwrap().is_none());
        // Blank values are unset, and OTEL_SDK_DISABLED wins over an endpoint.
        let blank = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| " ".to_string());
        assert!(tracer_provider("beacon-test", &blank).unwrap().is_none());
        let disabled = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_string()),
            "OTEL_SDK_DISABLED" => Some("TRUE".to_string()),
            _ => None,
        };
        assert!(tracer_provider("beacon-test", &disabled).unwrap().is_none());
        assert!(!Telemetry::default().exporting());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endpoint_builds_an_exporter_and_grpc_is_refused() {
        let http = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .then(|| "http://127.0.0.1:9/v1/traces".to_string())
        };
        let provider = tracer_provider("beacon-test", &http).unwrap();
        let telemetry = Telemetry { provider };
        assert!(telemetry.exporting());
        // Nothing queued: the shutdown returns at once even with nobody listening.
        telemetry.shutdown(Duration::from_secs(5)).await;
        let grpc = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            _ => None,
        };
        let e = tracer_provider("beacon-test", &grpc).unwrap_err();
        assert_eq!(e.key, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let typo = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "127.0.0.1:4318".to_string())
        };
        let e = tracer_provider("beacon-test", &typo).unwrap_err();
        assert_eq!(e.key, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    }

    /// Collects what the log layer writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn json_lines(buffer: &Buffer) -> Vec<serde_json::Value> {
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn json_lines_carry_the_current_spans_trace_and_span_ids() {
        // A provider without a processor: spans get real ids, nothing is exported.
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let filter = tracing_subscriber::EnvFilter::new("info");
        let sub = subscriber(true, filter, buffer.clone(), Some(&provider), "beacon-test");
        let (trace_id, span_id) = tracing::subscriber::with_default(sub, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("execution", execution_id = "e-1");
            let _entered = span.enter();
            tracing::info!("inside");
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let lines = json_lines(&buffer);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["trace_id"], trace_id.as_str(), "{}", lines[1]);
        assert_eq!(lines[1]["span_id"], span_id.as_str(), "{}", lines[1]);
        assert_eq!(trace_id.len(), 32);
        assert_eq!(span_id.len(), 16);
        assert_eq!(lines[1]["span"]["execution_id"], "e-1");
        assert_eq!(lines[1]["level"], "INFO");
        assert!(lines[1]["fields"].is_object());
    }

    #[test]
    fn traceparents_go_out_and_come_back_in() {
        let provider = SdkTracerProvider::builder().build();
        let filter = tracing_subscriber::EnvFilter::new("off");
        let sub = subscriber(false, filter, std::io::sink, Some(&provider), "beacon-test");
        tracing::subscriber::with_default(sub, || {
            let sent = tracing::info_span!(parent: None, "router_call");
            let tp = traceparent(&sent).unwrap();
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(parts[0], "00");
            let received = tracing::info_span!(parent: None, "inference");
            continue_from(&received, Some(&tp));
            let cx = received.context();
            assert_eq!(cx.span().span_context().trace_id().to_string(), parts[1]);
            // Garbage starts a trace of its own.
            let fresh = tracing::info_span!(parent: None, "inference");
            continue_from(&fresh, Some("00-zz-zz-01"));
            assert_ne!(
                fresh.context().span().span_context().trace_id().to_string(),
                parts[1]
            );
        });
        // Without an OpenTelemetry layer there is no context to send.
        let plain = subscriber(
            false,
            tracing_subscriber::EnvFilter::new("off"),
            std::io::sink,
            None,
            "t",
        );
        tracing::subscriber::with_default(plain, || {
            assert!(traceparent(&tracing::info_span!("x")).is_none());
        });
    }
}
