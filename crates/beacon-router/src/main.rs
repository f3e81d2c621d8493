//! The `beacon-router` binary: read the config, print the `listening on` line, serve
//! until SIGTERM or Ctrl-C. Exit 64 on a configuration error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use beacon_router::{Application, Config};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "beacon-router",
    version,
    about = "Beacon's region-strict inference router"
)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "BEACON_ROUTER_CONFIG")]
    config: PathBuf,
    /// Listen address, overriding the file (PORT still overrides the port).
    #[arg(long)]
    listen: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let env = |k: &str| std::env::var(k).ok();
    let mut config = match Config::from_file(&args.config, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beacon-router: {e}");
            return ExitCode::from(64);
        }
    };
    if let Some(listen) = &args.listen {
        match listen.parse() {
            Ok(addr) => config.listen = addr,
            Err(e) => {
                eprintln!("beacon-router: configuration error at --listen: {listen:?}: {e}");
                return ExitCode::from(64);
            }
        }
        if let Some(port) = env("PORT").and_then(|p| p.parse().ok()) {
            config.listen.set_port(port);
        }
    }
    tracing::info!("configuration:\n{}", config.summary());
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("beacon-router: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", app.url());
    let _ = std::io::stdout().flush();
    let token = CancellationToken::new();
    let run = app.run(token.clone());
    tokio::pin!(run);
    let result = tokio::select! {
        r = &mut run => r,
        () = wait_for_signal() => {
            tracing::info!("signal received: finishing in-flight requests");
            token.cancel();
            run.await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon-router: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
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
