//! beacon-service: the plumbing `beacon-router` and `beacon-runner` share, written once:
//! configuration errors that name the key, a binary's run-until-SIGTERM loop with its
//! `listening on` line, background handles for in-process use (tests, `beacon demo`),
//! the constant-time admin bearer-token check, bounded reads of peers' bodies,
//! connection strings shown without their secrets, and the HTTP serve loop with its
//! connection limits and JSON transport errors; each service's Prometheus metrics registry;
//! logging and OpenTelemetry traces (`telemetry`).

pub mod body;
#[cfg(feature = "hostile")]
pub mod hostile;
pub mod metrics;
#[cfg(feature = "test-support")]
pub mod openapi_check;
#[cfg(feature = "test-support")]
pub mod promtool;
pub mod redact;
pub mod serve;
mod server_config;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod transport;

pub use serve::{ServerConfig, serve};
pub use transport::{Render, TransportError};

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::HeaderMap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A configuration error, naming the key at fault. Binaries exit 64 on it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error at {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

/// Exit code of a configuration error (EX_CONFIG's neighbour EX_USAGE, as sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

pub fn config_error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// A TOML parse error of `text`, keyed by the line it points at.
pub fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let key = e.span().map_or_else(
        || "config".to_string(),
        |s| {
            format!(
                "line {}",
                text[..s.start.min(text.len())].lines().count().max(1)
            )
        },
    );
    config_error(key, e.message().to_string())
}

/// Logs to stderr (stdout is reserved for the `listening on` line), filtered by
/// `RUST_LOG` or `default`, and exports traces when the standard OpenTelemetry variables
/// name an OTLP endpoint (`telemetry`; `service` is the default `service.name`).
/// `LOG_FORMAT=json` writes one JSON object per line (for log collectors, with
/// `trace_id`/`span_id` while a traced span is current), `text` or unset the human
/// format; any other value is a configuration error naming `LOG_FORMAT`, never a silent
/// fallback. Call inside the tokio runtime; shut the returned handle down after the server.
pub fn init_logging(default: &str, service: &str) -> Result<telemetry::Telemetry, ConfigError> {
    let json = match std::env::var("LOG_FORMAT").ok().as_deref().map(str::trim) {
        None | Some("" | "text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(config_error(
                "LOG_FORMAT",
                format!("{other:?} is not a log format: use text or json"),
            ));
        }
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    telemetry::install(json, filter, service)
}

/// Applies a `--listen ADDR` flag over the configured address; the platform's `PORT`
/// still wins for the port, as it does for the file's address.
pub fn override_listen(
    listen: &mut SocketAddr,
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let Some(text) = flag else { return Ok(()) };
    *listen = text
        .parse()
        .map_err(|e| config_error("--listen", format!("{text:?}: {e}")))?;
    if let Some(port) = env("PORT").and_then(|p| p.parse().ok()) {
        listen.set_port(port);
    }
    Ok(())
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant
/// time so the token cannot be guessed byte by byte.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Resolves on SIGTERM (how Fly.io and Railway stop a service) or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A write past the process's file-size limit (`RLIMIT_FSIZE`, a full quota) kills
/// the process with SIGXFSZ by default, losing every answer it held. With a handler
/// installed the write fails with EFBIG instead: the database reports the error, the
/// service says so in its health route, and it goes on once space is back. tokio keeps
/// a signal's handler installed for the life of the process, so the stream itself can
/// be dropped.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::warn!(error = %e, "cannot handle SIGXFSZ: a file-size limit would end the process");
        }
    }
}

/// A binary's main loop: prints `listening on URL` as the first stdout line, runs the
/// service until it ends or a signal arrives, then lets it shut down gracefully.
pub async fn serve_until_signal<F>(
    name: &str,
    url: &str,
    run: impl FnOnce(CancellationToken) -> F,
) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    survive_file_size_limit();
    println!("listening on {url}");
    let _ = std::io::stdout().flush();
    let token = CancellationToken::new();
    let service = run(token.clone());
    tokio::pin!(service);
    let result = tokio::select! {
        r = &mut service => r,
        () = wait_for_signal() => {
            tracing::info!("{name}: signal received, shutting down gracefully");
            token.cancel();
            service.await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A service running on a tracked task of this process.
pub struct ServiceHandle {
    pub url: String,
    pub addr: SocketAddr,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl ServiceHandle {
    /// Runs `run` (given the shutdown token) on a tracked task.
    pub fn spawn<F>(
        name: &'static str,
        addr: SocketAddr,
        run: impl FnOnce(CancellationToken) -> F,
    ) -> ServiceHandle
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let service = run(token.clone());
        tracker.spawn(async move {
            if let Err(e) = service.await {
                tracing::error!(error = %e, "{name} stopped with an error");
            }
        });
        ServiceHandle {
            url: format!("http://{addr}"),
            addr,
            token,
            tracker,
        }
    }

    /// Graceful shutdown; returns when every task has ended.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "secret"));
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(bearer_matches(&h, "secret"));
        assert!(!bearer_matches(&h, "secre"));
        assert!(!bearer_matches(&h, "secret2"));
    }

    #[test]
    fn listen_flag_then_port() {
        let mut addr: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        override_listen(&mut addr, None, &|_| None).unwrap();
        assert_eq!(addr.port(), 8000);
        override_listen(&mut addr, Some("127.0.0.1:0"), &|_| None).unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:0");
        override_listen(&mut addr, Some("127.0.0.1:0"), &|k| {
            (k == "PORT").then(|| "9".into())
        })
        .unwrap();
        assert_eq!(addr.port(), 9);
        assert_eq!(
            override_listen(&mut addr, Some("nope"), &|_| None)
                .unwrap_err()
                .key,
            "--listen"
        );
    }

    #[test]
    fn toml_errors_name_the_line() {
        let text = "a = 1\nb = \n";
        let e = toml::from_str::<toml::Value>(text).unwrap_err();
        assert_eq!(toml_error(text, &e).key, "line 2");
    }

    #[tokio::test]
    async fn handles_run_and_shut_down() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let h = ServiceHandle::spawn("test", addr, |token| async move {
            token.cancelled().await;
            Ok(())
        });
        assert_eq!(h.url, "http://127.0.0.1:9");
        h.shutdown().await;
    }
}
