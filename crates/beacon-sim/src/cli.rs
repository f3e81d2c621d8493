//! The command line: flags (clap), their semantic validation into a `SimConfig` (exit
//! code 64 on a bad value), logging setup and the shutdown signal.

use std::net::SocketAddr;

use beacon_core::Region;
use clap::{Parser, ValueEnum};

use crate::config::{DEFAULT_MODELS, ProviderKind, SimConfig};
use crate::duration::{parse_duration, whole_ms};
use crate::faults::Faults;
use crate::scenario::Scenario;

/// EX_USAGE from sysexits.h: the command was used incorrectly.
pub const EXIT_USAGE: i32 = 64;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Modal,
    Openai,
}

/// A stand-in for paid GPU inference endpoints (Modal web endpoints, OpenAI-compatible
/// servers) that can misbehave on purpose. Prints `listening on http://ADDR` once bound.
#[derive(Debug, Parser)]
#[command(name = "beacon-sim", version, about)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Region served (us-east, eu-west, asia-pacific, an alias such as EU, or a slug).
    #[arg(long)]
    pub region: String,
    /// Region label reported in answers (e.g. asia-southeast); defaults to the region.
    #[arg(long)]
    pub label: Option<String>,
    /// Contract presented as native (both inference routes are always served).
    #[arg(long, value_enum, default_value = "modal")]
    pub kind: KindArg,
    /// Comma-separated model names accepted.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_MODELS.map(String::from))]
    pub models: Vec<String>,
    /// Scenario TOML file, or `demo` for the built-in one.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Service time per call (200ms, 3s, 2m; bare number = ms).
    #[arg(long, default_value = "0")]
    pub latency: String,
    /// Seeded ± spread around the latency.
    #[arg(long, default_value = "0")]
    pub jitter: String,
    /// Extra delay of the first call after an idle period (0 = never cold).
    #[arg(long, default_value = "0")]
    pub cold_start: String,
    /// Idle time after which the next call is cold.
    #[arg(long, default_value = "120s")]
    pub idle_after: String,
    /// Calls served at once; more queue.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub empty_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Probability that a successful answer carries a U+0000 in its middle.
    #[arg(long, default_value_t = 0.0)]
    pub nul_rate: f64,
    /// Pad successful answers to at least this many bytes, streamed (0 = off; ≤ 1 GiB).
    #[arg(long, default_value_t = 0)]
    pub oversize_bytes: u64,
    /// Calls running longer than this answer 303 to a result URL (0 = never).
    #[arg(long, default_value = "150s")]
    pub redirect_after: String,
    /// GET /health answers 404 `modal-http: invalid function call`.
    #[arg(long)]
    pub health_broken: bool,
    /// Inference routes answer 404 `modal-http: invalid function call`.
    #[arg(long)]
    pub inference_broken: bool,
    /// Seed of every fault and answer draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A flag value that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Args {
    /// Semantic validation: region, durations, rates, models, label, scenario.
    pub fn into_config(self) -> Result<SimConfig, UsageError> {
        let region =
            Region::parse(&self.region).map_err(|e| UsageError(format!("--region: {e}")))?;
        let ms = |flag: &str, value: &str| {
            parse_duration(value)
                .map(whole_ms)
                .map_err(|e| UsageError(format!("--{flag}: {e}")))
        };
        let faults = Faults {
            error_rate: self.error_rate,
            empty_rate: self.empty_rate,
            hang_rate: self.hang_rate,
            malformed_rate: self.malformed_rate,
            drop_rate: self.drop_rate,
            latency_ms: ms("latency", &self.latency)?,
            jitter_ms: ms("jitter", &self.jitter)?,
            cold_start_ms: ms("cold-start", &self.cold_start)?,
            idle_after_ms: ms("idle-after", &self.idle_after)?,
            redirect_after_ms: ms("redirect-after", &self.redirect_after)?,
            max_concurrency: self.max_concurrency,
            inference_broken: self.inference_broken,
            health_broken: self.health_broken,
            oversize_bytes: self.oversize_bytes,
            nul_rate: self.nul_rate,
        };
        // Fault messages name the JSON key; the flag name is what the user typed.
        faults.validate().map_err(|e| {
            UsageError(format!(
                "--{}",
                e.0.replacen('_', "-", 2).replacen("-ms", "", 1)
            ))
        })?;
        let scenario = match &self.scenario {
            Some(spec) => {
                Some(Scenario::load(spec).map_err(|e| UsageError(format!("--scenario: {e}")))?)
            }
            None => None,
        };
        let config = SimConfig {
            listen: self.listen,
            region,
            label: self.label,
            kind: match self.kind {
                KindArg::Modal => ProviderKind::Modal,
                KindArg::Openai => ProviderKind::Openai,
            },
            models: self
                .models
                .into_iter()
                .map(|m| m.trim().to_string())
                .collect(),
            scenario,
            faults,
            seed: self.seed,
            ..SimConfig::default()
        };
        config.validate().map_err(UsageError)?;
        Ok(config)
    }
}

/// Logs go to stderr (stdout carries only the `listening on` line). `RUST_LOG` filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Ctrl-c / SIGTERM listener. Installed before the `listening on` line is printed, so a
/// signal sent as soon as that line is read is never lost to the default action (which
/// would kill the process without a graceful shutdown).
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Registers the handlers now (must run inside the tokio runtime).
    pub fn install() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM/SIGINT; falling back to ctrl-c");
                    None
                }
            };
            ShutdownSignal { signals }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    /// Resolves on the first ctrl-c or SIGTERM.
    pub async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c; running until killed");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<SimConfig, UsageError> {
        let mut argv = vec!["beacon-sim", "--region", "EU"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap().into_config()
    }

    #[test]
    fn flags_become_a_config() {
        let c = args(&[
            "--latency",
            "200ms",
            "--cold-start",
            "3s",
            "--error-rate",
            "0.1",
            "--models",
            "a,b",
            "--label",
            "asia-southeast",
        ])
        .unwrap();
        assert_eq!(c.region, Region::eu_west());
        assert_eq!(
            (
                c.faults.latency_ms,
                c.faults.cold_start_ms,
                c.faults.redirect_after_ms
            ),
            (200, 3_000, 150_000)
        );
        assert_eq!(c.models, vec!["a", "b"]);
        assert_eq!(c.effective_label(), "asia-southeast");
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (extra, needle) in [
            (&["--error-rate", "1.5"][..], "--error-rate"),
            (&["--latency", "soon"][..], "--latency"),
            (&["--max-concurrency", "0"][..], "--max-concurrency"),
            (&["--scenario", "/nonexistent/x.toml"][..], "--scenario"),
            (&["--models", "a,a"][..], "twice"),
            (&["--nul-rate", "1.5"][..], "--nul-rate"),
            (&["--oversize-bytes", "9999999999"][..], "--oversize-bytes"),
        ] {
            let err = args(extra).unwrap_err().0;
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
        let err = Args::try_parse_from(["beacon-sim", "--region", "Mars Base"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(err.0.contains("--region"), "{}", err.0);
    }
}
