//! The `beacon-bench` binary: one subcommand per benchmark; exit 0 when every target
//! is met, 1 when a target is missed or a request failed, 2 when the benchmark could
//! not be set up (missing binaries, a child that never said `listening on`, no
//! database).

mod litellm;
mod load;
mod overhead;
mod peers;
mod report;
mod runner;
mod schedule;
mod stats;

use std::process::ExitCode;

// The child-process plumbing is shared with the drills.
use beacon_drills::procs;

use clap::{Parser, Subcommand};

/// Exit code of a run whose targets were all met.
const EXIT_PASS: u8 = 0;
/// Exit code of a run that missed a target or saw a failed request.
const EXIT_FAIL: u8 = 1;
/// Exit code of a run that could not be set up.
const EXIT_SETUP: u8 = 2;

/// Beacon's benchmarks. Each one starts the real release binaries as child
/// processes, drives them over real HTTP and prints a table (or JSON with --json).
#[derive(Debug, Parser)]
#[command(name = "beacon-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The router's added latency at a fixed request rate against a zero-latency
    /// simulator, side by side with calling the simulator directly.
    RouterOverhead(overhead::OverheadArgs),
    /// The runner's orchestration (a job's elapsed time against simulators with
    /// latency, vs the ideal), write path (executions stored per second) and a
    /// 100,000-execution job (acceptance time, memory), on SQLite and PostgreSQL.
    Runner(runner::RunnerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One event-loop thread for the load generator: the machine is small and the
    // processes under test need the other cores. Pacing runs on its own OS thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beacon-bench: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let outcome = match cli.command {
        Command::RouterOverhead(args) => runtime.block_on(overhead::run(args)),
        Command::Runner(args) => runtime.block_on(runner::run(args)),
    };
    match outcome {
        Ok(true) => ExitCode::from(EXIT_PASS),
        Ok(false) => ExitCode::from(EXIT_FAIL),
        Err(e) => {
            eprintln!("beacon-bench: setup failed: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}
