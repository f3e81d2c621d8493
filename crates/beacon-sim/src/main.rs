//! The `beacon-sim` binary: parse flags, start the simulator, print the `listening on`
//! line, serve until ctrl-c or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use beacon_sim::Simulator;
use beacon_sim::cli::{Args, EXIT_USAGE, ShutdownSignal, init_logging};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beacon-sim: {e}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    init_logging();
    let handle = match Simulator::start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("beacon-sim: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let signal = ShutdownSignal::install();
    let mut stdout = std::io::stdout();
    // The one machine-readable line scripts and tests wait for.
    if writeln!(stdout, "listening on {}", handle.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("beacon-sim: cannot write to stdout");
    }
    signal.wait().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}
