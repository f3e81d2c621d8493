//! The `beacon` command. Thin: parse the command line, run the subcommand, exit with
//! its code (docs/cli.md).

mod cli;
mod client;
mod commands;
mod exit;
mod keys;
mod progress;
mod summary;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    // Services started by `demo` log warnings only, so the progress bar stays readable.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Demo(args) => commands::demo::demo(args, json).await,
        Command::Keygen { out, force } => commands::keys::keygen(out, force, json),
        Command::Sign { file, key, out } => commands::keys::sign(&file, key.key, out),
        Command::Submit {
            file,
            runner,
            key,
            no_sign,
            wait,
        } => commands::jobs::submit(&file, &runner.runner, key.key, no_sign, wait, json).await,
        Command::Status { job, runner } => commands::jobs::status(&job, &runner.runner, json).await,
        Command::Watch { job, runner } => commands::jobs::watch(&job, &runner.runner, json).await,
        Command::Cancel { job, runner } => commands::jobs::cancel(&job, &runner.runner, json).await,
        Command::Report { job, runner, html } => {
            commands::report::report(&job, &runner.runner, html, json).await
        }
        Command::Verify {
            job,
            runner,
            public_key,
            no_log,
            log_wait,
        } => {
            let log_wait = (!no_log).then(|| std::time::Duration::from_secs(log_wait));
            commands::verify::verify(&job, &runner.runner, public_key, log_wait, json).await
        }
        Command::Doctor {
            runner,
            router,
            token,
        } => commands::doctor::doctor(&runner.runner, router, token, json).await,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("beacon: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
