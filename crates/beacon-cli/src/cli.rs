//! The command line: every subcommand and its options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "beacon",
    version,
    about = "Beacon: how language models answer the same questions in different regions"
)]
pub struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct RunnerArg {
    /// The runner's base URL.
    #[arg(
        long,
        env = "BEACON_RUNNER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub runner: String,
}

#[derive(Args, Clone)]
pub struct KeyArg {
    /// Signing key file (default: ~/.config/beacon/signing.key).
    #[arg(long, env = "BEACON_KEY_FILE")]
    pub key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start simulators, a router and a runner, run a sample job, show its result.
    Demo(DemoArgs),
    /// Create a signing key file (mode 0600) and print its public key.
    Keygen {
        /// Where to write it (default: ~/.config/beacon/signing.key).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Sign a job spec (fresh nonce and timestamp) and print it.
    Sign {
        file: PathBuf,
        #[command(flatten)]
        key: KeyArg,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Submit a job spec (signed here unless it already is and --no-sign is given).
    Submit {
        file: PathBuf,
        #[command(flatten)]
        runner: RunnerArg,
        #[command(flatten)]
        key: KeyArg,
        /// Submit as is, without signing.
        #[arg(long)]
        no_sign: bool,
        /// Wait for the job to finish, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job's status and progress.
    Status {
        job: String,
        #[command(flatten)]
        runner: RunnerArg,
    },
    /// Follow a job live until it finishes.
    Watch {
        job: String,
        #[command(flatten)]
        runner: RunnerArg,
    },
    /// Cancel a job.
    Cancel {
        job: String,
        #[command(flatten)]
        runner: RunnerArg,
    },
    /// Print a job's answers by question, model and region.
    Report {
        job: String,
        #[command(flatten)]
        runner: RunnerArg,
        /// Also write the HTML report to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Check every receipt of a job offline: signature, key, and the answer's hash.
    Verify {
        job: String,
        #[command(flatten)]
        runner: RunnerArg,
        /// The runner's receipt public key (base64) to require; default: the key the
        /// runner publishes in /api/v1/health.
        #[arg(long)]
        public_key: Option<String>,
        /// Do not check the receipts' inclusion in the runner's transparency log.
        #[arg(long)]
        no_log: bool,
        /// Seconds to wait for a receipt not yet in the transparency log (receipts
        /// are appended within seconds of being stored).
        #[arg(long, default_value_t = 10)]
        log_wait: u64,
    },
    /// Check a deployment the way an operator would, with a verdict and a next step each.
    Doctor {
        #[command(flatten)]
        runner: RunnerArg,
        /// The router's base URL (for provider checks).
        #[arg(long, env = "BEACON_ROUTER_URL")]
        router: Option<String>,
        /// The runner's admin token (for its diagnostics).
        #[arg(long, env = "RUNNER_ADMIN_TOKEN")]
        token: Option<String>,
    },
}

#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Where the demo keeps its database, keys and reports.
    #[arg(long, default_value = ".beacon-demo")]
    pub dir: PathBuf,
    /// Keep everything running and print the URLs (Ctrl-C stops).
    #[arg(long)]
    pub serve: bool,
    /// Question ids (default: the whole catalogue).
    #[arg(long, value_delimiter = ',')]
    pub questions: Vec<String>,
    /// Models (default: llama3.2-1b, mistral-7b, qwen2.5-1.5b).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Regions (default: us-east, eu-west, asia-pacific).
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Runs of each cell.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Provider faults, e.g. `eu-west:error_rate=0.2,hang_rate=0.05` (repeat or join with `;`).
    #[arg(long)]
    pub faults: Vec<String>,
    /// Simulated provider latency in milliseconds.
    #[arg(long, default_value_t = 600)]
    pub latency_ms: u64,
}
