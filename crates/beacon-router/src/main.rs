//! The `beacon-router` binary: read the config, print the `listening on` line, serve
//! until SIGTERM or Ctrl-C. Exit 64 on a configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use beacon_router::{Application, Config};
use clap::Parser;

/// The binary's allocator (see the workspace Cargo.toml): every routed call allocates
/// and frees its request, answer and JSON, and glibc's malloc/free was a large share of
/// the router's CPU per call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let telemetry = match beacon_service::init_logging("info", "beacon-router") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("beacon-router: {e}");
            return ExitCode::from(beacon_service::EXIT_CONFIG);
        }
    };
    let args = Args::parse();
    let env = |k: &str| std::env::var(k).ok();
    let mut config = match Config::from_file(&args.config, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beacon-router: {e}");
            return ExitCode::from(beacon_service::EXIT_CONFIG);
        }
    };
    if let Err(e) =
        beacon_service::override_listen(&mut config.listen, args.listen.as_deref(), &env)
    {
        eprintln!("beacon-router: {e}");
        return ExitCode::from(beacon_service::EXIT_CONFIG);
    }
    tracing::info!("configuration:\n{}", config.summary());
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("beacon-router: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = app.url();
    let code =
        beacon_service::serve_until_signal("beacon-router", &url, move |token| app.run(token))
            .await;
    // The last requests' spans leave after the graceful shutdown, within a bound.
    telemetry
        .shutdown(beacon_service::telemetry::SHUTDOWN_FLUSH)
        .await;
    code
}
