//! `beacon-bench runner`: the runner's orchestration (a 900-execution job against
//! simulators with a fixed latency finishes close to `ceil(N / C) x latency`), its
//! write path (executions completed and stored per second against zero-latency
//! simulators) and a 100,000-execution job (acceptance time, memory), on SQLite and
//! PostgreSQL. Each measurement starts its own stack of release binaries (three
//! simulators, a router, a runner) on a fresh database, and drives it over HTTP.

mod api;
mod big_job;
mod calls;
mod cpu;
mod db;
mod measure;
mod median;
mod report;
mod report_load;
mod scenarios;
mod spec;
mod stack;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};

use crate::overhead::parse_duration;
use db::{Backend, Backends};
use report::RunnerReport;
use scenarios::Ctx;
use spec::Shape;

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Measurement {
    /// Elapsed time of a job against simulators with latency, vs the ideal.
    Orchestration,
    /// Executions completed and stored per second, zero-latency simulators.
    Throughput,
    /// Accepting a 100,000-execution job, and the runner's memory while it runs.
    BigJob,
    /// The report (JSON, page, JSON lines export, six concurrent requests) of a
    /// 100,000-execution job seeded in the database, and the runner's memory.
    Report,
}

#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// Database backends: sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    pub backend: Backends,
    /// Measurements to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "orchestration,throughput,big-job"
    )]
    pub only: Vec<Measurement>,
    /// Orchestration: the runner's concurrency limits C to measure (instance, job and
    /// region limits all set to C), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "30,90")]
    pub concurrency: Vec<u32>,
    /// Orchestration: executions per job (a multiple of 9: questions x 3 models x 3
    /// regions x runs).
    #[arg(long, default_value_t = 900)]
    pub executions: u64,
    /// Orchestration and write path: how many times each is measured (a fresh stack
    /// each time); judged on the median run.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Orchestration: the simulators' service time per call.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Write path: executions per job (a multiple of 9). 9,000 (about 10 s) gives a
    /// sustained rate; a 900-execution job is over in about a second, and its rate is
    /// dominated by the first wave's dispatch and the last round.
    #[arg(long, default_value_t = 9000)]
    pub throughput_executions: u64,
    /// Write path: status poll interval. Every status read counts all of the job's
    /// executions, so a fast poll takes a share of the write path it measures; the
    /// rate is computed from the runner's own finished_at, whatever the interval.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub throughput_poll: Duration,
    /// Write path and big job: the runner's concurrency limit C.
    #[arg(long, default_value_t = 64)]
    pub throughput_concurrency: u32,
    /// Big job: how long it runs (from its 202 answer) before it is cancelled.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub big_run: Duration,
    /// Orchestration: status poll interval while a job runs (also the simulators'
    /// in-flight poll). The verdict is on the runner's own finished_at, so the poll only
    /// notices the end; each status read counts the job's executions, and every 20 ms
    /// that took ~70 ms of the runner's and ~100 ms of PostgreSQL's CPU per C = 90 job,
    /// a sixth of what the job itself needs, competing with its calls.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub poll: Duration,
    /// A PostgreSQL server URL (any database); each measurement creates a database
    /// `beacon_bench_<random>` there and drops it afterwards.
    #[arg(
        long,
        env = "BEACON_BENCH_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Directory holding beacon-sim, beacon-router and beacon-runner (default: the
    /// directory of this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Print the result as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write each job's provider calls (all simulators, by start time) as JSON lines to
    /// DIR/<job id>.jsonl, for a closer look at where the time went.
    #[arg(long, value_name = "DIR")]
    pub dump_calls: Option<PathBuf>,
    /// Keep each stack's scratch directory (configs, logs, the SQLite file) and its
    /// PostgreSQL database instead of removing them; their places go to stderr.
    #[arg(long)]
    pub keep: bool,
}

/// Runs the chosen measurements and prints the result. `Ok(pass)` once measured;
/// `Err` when a stack could not be set up.
pub async fn run(args: RunnerArgs) -> anyhow::Result<bool> {
    let orchestration_shape = Shape::for_executions(args.executions)?;
    let throughput_shape = Shape::for_executions(args.throughput_executions)?;
    validate(&args)?;
    let ctx = Ctx {
        bin_dir: crate::procs::bin_dir(args.bin_dir.as_deref())?,
        postgres_url: args.postgres_url.clone(),
        key: spec::new_key()?,
        poll: args.poll,
        throughput_poll: args.throughput_poll,
        dump_calls: args.dump_calls.clone(),
        keep: args.keep,
    };
    let wants = |m: Measurement| args.only.contains(&m);
    let mut report = RunnerReport::default();
    let mut reports = Vec::new();
    for &backend in args.backend.0 {
        if wants(Measurement::Orchestration) {
            for (&c, run) in args
                .concurrency
                .iter()
                .flat_map(|c| (1..=args.runs).map(move |r| (c, r)))
            {
                note(&format!(
                    "orchestration on {backend}, C = {c}, {} executions, {} ms simulators \
                     (run {run} of {})",
                    orchestration_shape.executions(),
                    args.latency.as_millis(),
                    args.runs
                ));
                let o =
                    scenarios::orchestration(&ctx, backend, c, args.latency, &orchestration_shape)
                        .await?;
                report.orchestration.push(o);
            }
        }
        for run in (1..=args.runs).filter(|_| wants(Measurement::Throughput)) {
            note(&format!(
                "write path on {backend}, C = {}, {} executions, zero-latency simulators \
                 (run {run} of {})",
                args.throughput_concurrency,
                throughput_shape.executions(),
                args.runs
            ));
            let t = scenarios::throughput(
                &ctx,
                backend,
                args.throughput_concurrency,
                &throughput_shape,
            )
            .await?;
            report.throughput.push(t);
        }
        if wants(Measurement::BigJob) {
            note(&format!(
                "big job on {backend}: 100,000 executions, runs {} s, C = {}",
                args.big_run.as_secs(),
                args.throughput_concurrency
            ));
            let b =
                big_job::measure(&ctx, backend, args.throughput_concurrency, args.big_run).await?;
            report.big.push(b);
        }
        if wants(Measurement::Report) {
            note(&format!(
                "report of a 100,000-execution job on {backend} (seeded in the database)"
            ));
            reports.push(report_load::measure(&ctx, backend).await?);
        }
    }
    for r in &reports {
        print!("{}", r.table());
    }
    if args.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(report.pass() && reports.iter().all(report_load::ReportLoad::pass))
}

fn validate(args: &RunnerArgs) -> anyhow::Result<()> {
    if args.only.is_empty() {
        bail!("--only names no measurement");
    }
    if args.concurrency.is_empty() || args.concurrency.iter().any(|&c| c == 0 || c > 4096) {
        bail!("--concurrency values must be in [1, 4096]");
    }
    if args.throughput_concurrency == 0 || args.throughput_concurrency > 4096 {
        bail!("--throughput-concurrency must be in [1, 4096]");
    }
    if args.latency.is_zero() {
        bail!("--latency must be above 0 (the ideal is a whole number of latencies)");
    }
    for (flag, poll) in [
        ("--poll", args.poll),
        ("--throughput-poll", args.throughput_poll),
    ] {
        if poll < Duration::from_millis(1) || poll > Duration::from_secs(5) {
            bail!("{flag} must be in [1ms, 5s]");
        }
    }
    if args.runs == 0 || args.runs > 20 {
        bail!("--runs must be in [1, 20]");
    }
    if args.big_run.is_zero() {
        bail!("--big-run must be above 0");
    }
    if args.backend.0.contains(&Backend::Postgres) && args.postgres_url.trim().is_empty() {
        bail!("--postgres-url is empty");
    }
    Ok(())
}

/// Progress on stderr: the whole run takes a minute or two.
fn note(what: &str) {
    eprintln!("beacon-bench runner: {what}");
}
