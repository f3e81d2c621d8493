//! The `beacon-runner` binary: `serve` (default) prints the `listening on` line and
//! runs until SIGTERM/Ctrl-C (work in flight is handed back); `migrate` applies the
//! migrations and exits. A configuration error exits 64 naming the key.

use std::path::PathBuf;
use std::process::ExitCode;

use beacon_runner::{Application, Config};
use clap::{Parser, Subcommand};

/// The binary's allocator (see the workspace Cargo.toml): the runner allocates and
/// frees per answer (JSON, receipts, rows), and glibc's malloc was a quarter of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "beacon-runner", version, about = "Beacon's durable job runner")]
struct Args {
    /// TOML configuration file (optional; the environment wins).
    #[arg(long, env = "BEACON_RUNNER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Listen address (PORT still overrides the port).
    #[arg(long, global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run jobs (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match beacon_service::init_logging("info", "beacon-runner") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("beacon-runner: {e}");
            return ExitCode::from(beacon_service::EXIT_CONFIG);
        }
    };
    let args = Args::parse();
    let env = |k: &str| std::env::var(k).ok();
    let mut config = match Config::load(args.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beacon-runner: {e}");
            return ExitCode::from(beacon_service::EXIT_CONFIG);
        }
    };
    if let Err(e) =
        beacon_service::override_listen(&mut config.listen, args.listen.as_deref(), &env)
    {
        eprintln!("beacon-runner: {e}");
        return ExitCode::from(beacon_service::EXIT_CONFIG);
    }
    if let Some(Command::Migrate) = args.command {
        return match beacon_store::connect(&config.database_url).await {
            Ok(_) => {
                println!(
                    "migrations applied to {}",
                    beacon_service::redact::connection_string(&config.database_url)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("beacon-runner: migrate failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing::info!("configuration: {}", config.summary());
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("beacon-runner: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = app.url();
    let code =
        beacon_service::serve_until_signal("beacon-runner", &url, move |token| app.run(token))
            .await;
    // The last requests' spans leave after the graceful shutdown, within a bound.
    telemetry
        .shutdown(beacon_service::telemetry::SHUTDOWN_FLUSH)
        .await;
    code
}
