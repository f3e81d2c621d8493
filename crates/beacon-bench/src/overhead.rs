//! `beacon-bench router-overhead`: starts a zero-latency `beacon-sim` and a
//! `beacon-router` in front of it as child processes, then drives both paths at the same
//! open-loop rate over the same number of connections, interleaved (direct, router,
//! direct, router …) so drift hits both alike, sampling the router's RSS meanwhile.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::litellm::LiteLlm;
use crate::load::{PhaseResult, Pool, REGION, Route, Target};
use crate::procs::{
    ChildEnv, RssSampler, Scratch, Service, cpu_ms, machine_busy_ms, rss_bytes, run_queue_wait_ms,
};
use crate::report::{CpuUse, PathFigures, Report};
use crate::stats::Summary;

/// How often the router's RSS is read during its phases.
const RSS_EVERY: Duration = Duration::from_millis(100);
/// A sanity bound on `--rate` (one pacing thread, one event loop).
const MAX_RATE: f64 = 100_000.0;

#[derive(Debug, Args)]
pub struct OverheadArgs {
    /// Requests per second, open loop: sent on schedule whatever the answers do.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Connections per path (one worker task each).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured time per path (split over the rounds), e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up per path before the first round (0s for none).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Interleaved rounds: each runs direct then router for duration / rounds.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Directory holding the beacon-sim and beacon-router binaries (default: the
    /// directory of this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Side by side at each of these rates (req/s), e.g. 100,500,1000,2000: both of
    /// Beacon's routes and the simulator's two routes direct (and the peer).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<f64>>,
    /// Also measure a peer proxy in front of the same simulator (side-by-side run).
    #[arg(long, value_enum)]
    pub peer: Option<PeerKind>,
    /// The peer's executable (`scripts/bench/router-overhead --peer litellm` installs
    /// LiteLLM in a scratch venv and passes its `litellm`).
    #[arg(long)]
    pub litellm: Option<PathBuf>,
    /// The peer's worker processes.
    #[arg(long, default_value_t = 2)]
    pub peer_workers: u32,
}

/// Peer proxies the side-by-side run can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerKind {
    Litellm,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    beacon_core::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the benchmark and prints the result. `Ok(pass)` once measured; `Err` when it
/// could not be set up.
pub async fn run(args: OverheadArgs) -> anyhow::Result<bool> {
    validate(&args)?;
    let bin_dir = crate::procs::bin_dir(args.bin_dir.as_deref())?;
    let scratch = Scratch::new("beacon-bench")?;
    let mut sim = Service::spawn(
        "beacon-sim",
        &bin_dir.join("beacon-sim"),
        ["--listen", "127.0.0.1:0", "--region", REGION],
        ChildEnv::Inherit,
        &scratch.path().join("sim.log"),
    )
    .await?;
    let config = scratch.path().join("router.toml");
    std::fs::write(&config, router_config(sim.url()))
        .with_context(|| format!("cannot write {}", config.display()))?;
    // Only the inference token (and RUST_LOG when set): nothing else of this shell.
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let mut router = Service::spawn(
        "beacon-router",
        &bin_dir.join("beacon-router"),
        [std::ffi::OsStr::new("--config"), config.as_os_str()],
        ChildEnv::Only(&[
            ("ROUTER_INFERENCE_TOKEN", crate::load::ROUTER_TOKEN),
            ("RUST_LOG", &log),
        ]),
        &scratch.path().join("router.log"),
    )
    .await?;
    if args.rates.is_some() || args.peer.is_some() {
        return side_by_side(&args, &sim, &router, scratch).await;
    }
    let report = measure(&args, &sim, &router).await?;
    if args.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.table());
    }
    // A child that died mid-run makes the figures meaningless (its errors are above).
    sim.check_alive()?;
    router.check_alive()?;
    // Router first (it holds connections to the simulator), then the simulator, then
    // the scratch directory.
    drop(router);
    drop(sim);
    drop(scratch);
    Ok(report.pass())
}

/// The `--rates`/`--peer` run (see `peers.rs`).
async fn side_by_side(
    args: &OverheadArgs,
    sim: &Service,
    router: &Service,
    scratch: Scratch,
) -> anyhow::Result<bool> {
    let peer = match args.peer {
        Some(PeerKind::Litellm) => {
            let program = args
                .litellm
                .clone()
                .context("--peer litellm needs --litellm PATH (the script passes it)")?;
            Some(LiteLlm::start(&program, sim.url(), args.peer_workers, scratch.path()).await?)
        }
        None => None,
    };
    let setup = crate::peers::Setup {
        rates: args.rates.clone().unwrap_or_else(|| vec![args.rate]),
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        rounds: args.rounds,
        sim,
        router,
        peer: peer.as_ref(),
    };
    let pass = crate::peers::run(setup, args.json).await;
    drop(peer);
    drop(scratch);
    pass
}

fn validate(args: &OverheadArgs) -> anyhow::Result<()> {
    let rates = args.rates.clone().unwrap_or_default();
    for rate in std::iter::once(args.rate).chain(rates) {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            bail!("--rate and --rates must be in (0, {MAX_RATE}]");
        }
    }
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be in [1, 4096]");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let per_round = args.duration / args.rounds;
    if crate::schedule::count_for(args.rate, per_round) == 0 {
        bail!(
            "--duration / --rounds holds no request at --rate {}",
            args.rate
        );
    }
    Ok(())
}

/// The router configuration: one Modal provider, the simulator, in its region.
fn router_config(sim_url: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"

[auth]
inference_token_env = "ROUTER_INFERENCE_TOKEN"

[health]
probe_interval = "30s"

[[providers]]
name = "sim-{REGION}"
kind = "modal"
region = "{REGION}"
url = "{}/"
models = ["{}"]
max_concurrency = 256
queue_timeout = "5s"
"#,
        sim_url.trim_end_matches('/'),
        crate::load::MODEL,
    )
}

/// The processes whose CPU time is accounted per phase.
#[derive(Debug, Clone, Copy)]
struct Pids {
    sim: u32,
    router: u32,
    generator: u32,
}

impl Pids {
    /// CPU used so far by each process and by the whole machine (0 where /proc cannot
    /// be read), and the wall-clock time since `epoch`.
    fn cpu(&self, epoch: Instant) -> CpuUse {
        let ms = |pid| cpu_ms(pid).unwrap_or(0.0);
        let wait = |pid| run_queue_wait_ms(pid).unwrap_or(0.0);
        CpuUse {
            router_ms: ms(self.router),
            sim_ms: ms(self.sim),
            generator_ms: ms(self.generator),
            machine_ms: machine_busy_ms().unwrap_or(0.0),
            wall_ms: epoch.elapsed().as_secs_f64() * 1000.0,
            router_wait_ms: wait(self.router),
            sim_wait_ms: wait(self.sim),
            generator_wait_ms: wait(self.generator),
        }
    }
}

/// One phase on one path: its figures, the CPU each process spent during it and, on
/// the router path, the router's peak RSS (0 on the direct path).
async fn phase(
    pool: &mut Pool,
    rate: f64,
    duration: Duration,
    first_index: u64,
    pids: Pids,
) -> (PhaseResult, CpuUse, u64) {
    let sampler =
        (pool.route() == Route::Router).then(|| RssSampler::start(pids.router, RSS_EVERY));
    let epoch = Instant::now();
    let before = pids.cpu(epoch);
    let result = pool.run(rate, duration, first_index).await;
    let cpu = pids.cpu(epoch).minus(&before);
    let rss = match sampler {
        Some(s) => s.stop(pids.router).await,
        None => 0,
    };
    (result, cpu, rss)
}

/// Warm-up, then the interleaved rounds.
async fn measure(args: &OverheadArgs, sim: &Service, router: &Service) -> anyhow::Result<Report> {
    let mut direct = Pool::connect(Target::new(Route::Direct, sim.url())?, args.connections)
        .await
        .context("connecting to the simulator")?;
    let mut routed = Pool::connect(Target::new(Route::Router, router.url())?, args.connections)
        .await
        .context("connecting to the router")?;
    let pids = Pids {
        sim: sim.pid(),
        router: router.pid(),
        generator: std::process::id(),
    };
    let rss_idle_bytes = rss_bytes(pids.router).unwrap_or(0);
    let mut next_index = 0u64;
    let mut warmup_errors = 0;
    let mut error_samples = Vec::new();
    let mut rss_peak_bytes = 0;
    if !args.warmup.is_zero() {
        for pool in [&mut direct, &mut routed] {
            let (w, _, rss) = phase(pool, args.rate, args.warmup, next_index, pids).await;
            rss_peak_bytes = rss_peak_bytes.max(rss);
            next_index += w.sent;
            warmup_errors += w.errors;
            error_samples.extend(w.error_samples);
        }
    }
    let per_round = args.duration / args.rounds;
    let mut direct_all = PhaseResult::default();
    let mut router_all = PhaseResult::default();
    let (mut direct_cpu, mut router_cpu) = (CpuUse::default(), CpuUse::default());
    for _ in 0..args.rounds {
        let (d, cpu, _) = phase(&mut direct, args.rate, per_round, next_index, pids).await;
        next_index += d.sent;
        direct_all.absorb(d);
        direct_cpu = direct_cpu.plus(&cpu);
        let (r, cpu, rss) = phase(&mut routed, args.rate, per_round, next_index, pids).await;
        rss_peak_bytes = rss_peak_bytes.max(rss);
        next_index += r.sent;
        router_all.absorb(r);
        router_cpu = router_cpu.plus(&cpu);
    }
    // A few messages from each path, so a router-only failure is visible.
    for path in [&mut direct_all, &mut router_all] {
        path.error_samples.truncate(3);
        error_samples.append(&mut path.error_samples);
    }
    error_samples.truncate(8);
    let sent = direct_all.sent + router_all.sent;
    let achieved_rate = if sent == 0 {
        0.0
    } else {
        (direct_all.achieved_rate * direct_all.sent as f64
            + router_all.achieved_rate * router_all.sent as f64)
            / sent as f64
    };
    let mut lags = std::mem::take(&mut direct_all.lags_ns);
    lags.append(&mut router_all.lags_ns);
    Ok(Report {
        rate: args.rate,
        connections: args.connections,
        duration_per_path: per_round * args.rounds,
        rounds: args.rounds,
        warmup: args.warmup,
        direct: figures(&mut direct_all, direct_cpu),
        router: figures(&mut router_all, router_cpu),
        warmup_errors,
        error_samples,
        rss_idle_bytes,
        rss_peak_bytes,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        achieved_rate,
        lag: Summary::of(&mut lags),
    })
}

fn figures(phase: &mut PhaseResult, cpu: CpuUse) -> PathFigures {
    PathFigures {
        cpu,
        sent: phase.sent,
        errors: phase.errors,
        latency: Summary::of(&mut phase.latencies_ns),
        pickup: Summary::of(&mut phase.pickup_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_config_points_at_the_simulator() {
        let toml = router_config("http://127.0.0.1:4000");
        assert!(toml.contains("url = \"http://127.0.0.1:4000/\""), "{toml}");
        assert!(toml.contains("region = \"eu-west\""));
        assert!(toml.contains("models = [\"llama3.2-1b\"]"));
    }
}
