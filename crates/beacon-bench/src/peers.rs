//! `beacon-bench router-overhead --rates R1,R2,… [--peer litellm]`: the side-by-side
//! run. For each rate, interleaved rounds over every path: the simulator direct on its
//! Modal and OpenAI routes, Beacon on `/inference` and `/v1/chat/completions`, and the
//! peer proxy (LiteLLM) on its OpenAI route in front of the same simulator. Each
//! path's overhead is its latency percentile minus its direct route's. The verdict is
//! Beacon's: p99 overhead ≤ 1 ms and no error on both routes at every rate; the peer is
//! measured, not judged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::litellm::{LiteLlm, group_usage};
use crate::load::{PhaseResult, Pool, Route, Target};
use crate::procs::{RssSampler, Service, cpu_ms, machine_busy_ms};
use crate::stats::Summary;

/// Beacon's p99 overhead target on both routes (quality bar).
const TARGET_P99_MS: f64 = 1.0;
/// How often RSS is sampled during a phase.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// What the side-by-side run needs.
pub struct Setup<'a> {
    pub rates: Vec<f64>,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: u32,
    pub sim: &'a Service,
    pub router: &'a Service,
    pub peer: Option<&'a LiteLlm>,
}

/// One path at one rate.
struct PathRun {
    result: PhaseResult,
    /// CPU the serving process(es) of the path used, ms.
    cpu_ms: f64,
    /// Wall time of the path's phases, ms.
    wall_ms: f64,
    rss_peak: u64,
}

/// What a path's server costs: its CPU time so far and its RSS now.
fn usage(route: Route, s: &Setup<'_>) -> (f64, u64) {
    match route {
        Route::Direct | Route::DirectChat => (
            cpu_ms(s.sim.pid()).unwrap_or(0.0),
            crate::procs::rss_bytes(s.sim.pid()).unwrap_or(0),
        ),
        Route::Router | Route::RouterChat => (
            cpu_ms(s.router.pid()).unwrap_or(0.0),
            crate::procs::rss_bytes(s.router.pid()).unwrap_or(0),
        ),
        Route::Peer => s
            .peer
            .map(|p| {
                let (rss, cpu) = group_usage(p.group());
                (cpu, rss)
            })
            .unwrap_or_default(),
    }
}

async fn phase(pool: &mut Pool, s: &Setup<'_>, rate: f64, d: Duration, first: u64) -> PathRun {
    let route = pool.route();
    // The router's RSS is sampled (one process); the peer's group is read at the end.
    let sampler = matches!(route, Route::Router | Route::RouterChat)
        .then(|| RssSampler::start(s.router.pid(), RSS_EVERY));
    let (cpu_before, _) = usage(route, s);
    let started = Instant::now();
    let result = pool.run(rate, d, first).await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (cpu_after, rss_now) = usage(route, s);
    let rss_peak = match sampler {
        Some(sm) => sm.stop(s.router.pid()).await,
        None => rss_now,
    };
    PathRun {
        result,
        cpu_ms: cpu_after - cpu_before,
        wall_ms,
        rss_peak,
    }
}

/// Runs every rate and prints the table (or JSON); `Ok(pass)`.
pub async fn run(s: Setup<'_>, as_json: bool) -> anyhow::Result<bool> {
    let mut routes = vec![
        Route::Direct,
        Route::Router,
        Route::DirectChat,
        Route::RouterChat,
    ];
    let mut pools = Vec::new();
    for route in &routes {
        let url = match route {
            Route::Direct | Route::DirectChat => s.sim.url(),
            _ => s.router.url(),
        };
        pools.push(
            Pool::connect(Target::new(*route, url)?, s.connections)
                .await
                .with_context(|| format!("connecting for {}", route.name()))?,
        );
    }
    if let Some(peer) = s.peer {
        routes.push(Route::Peer);
        pools.push(
            Pool::connect(Target::new(Route::Peer, peer.url())?, s.connections)
                .await
                .context("connecting to the peer")?,
        );
    }
    let mut rows = Vec::new();
    let mut index = 0u64;
    for &rate in &s.rates {
        let busy_before = machine_busy_ms().unwrap_or(0.0);
        let epoch = Instant::now();
        if !s.warmup.is_zero() {
            for pool in pools.iter_mut() {
                let w = phase(pool, &s, rate, s.warmup, index).await;
                index += w.result.sent;
            }
        }
        let mut runs: BTreeMap<usize, Vec<PathRun>> = BTreeMap::new();
        for _ in 0..s.rounds {
            for (i, pool) in pools.iter_mut().enumerate() {
                let r = phase(pool, &s, rate, s.duration / s.rounds, index).await;
                index += r.result.sent;
                runs.entry(i).or_default().push(r);
            }
        }
        let wall = epoch.elapsed().as_secs_f64() * 1000.0;
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let load = (machine_busy_ms().unwrap_or(0.0) - busy_before) / (wall * cores);
        rows.push(rate_row(rate, &routes, runs, load));
    }
    let pass = rows.iter().all(|r| r.pass);
    if as_json {
        let v: Vec<Value> = rows.iter().map(RateRow::json).collect();
        println!(
            "{:#}",
            json!({"benchmark": "router-overhead-peers", "rates": v, "pass": pass})
        );
    } else {
        print!("{}", table(&s, &rows));
    }
    Ok(pass)
}

/// One path's figures at one rate.
struct PathRow {
    route: Route,
    latency: Summary,
    /// Percentile differences against the path's direct route (p50, p90, p99), ms.
    overhead: Option<(f64, f64, f64)>,
    sent: u64,
    errors: u64,
    achieved: f64,
    cpu_share: f64,
    rss_mib: f64,
}

struct RateRow {
    rate: f64,
    paths: Vec<PathRow>,
    /// Busy share of the whole machine during this rate's phases.
    load: f64,
    pass: bool,
}

fn rate_row(
    rate: f64,
    routes: &[Route],
    runs: BTreeMap<usize, Vec<PathRun>>,
    load: f64,
) -> RateRow {
    let mut merged: Vec<(Route, PhaseResult, f64, f64, u64)> = Vec::new();
    for (i, list) in runs {
        let mut all = PhaseResult::default();
        let (mut cpu, mut wall, mut rss) = (0.0, 0.0, 0u64);
        for r in list {
            cpu += r.cpu_ms;
            wall += r.wall_ms;
            rss = rss.max(r.rss_peak);
            all.absorb(r.result);
        }
        merged.push((routes[i], all, cpu, wall, rss));
    }
    let summaries: BTreeMap<&'static str, Summary> = merged
        .iter_mut()
        .map(|(route, all, ..)| (route.name(), Summary::of(&mut all.latencies_ns)))
        .collect();
    let paths: Vec<PathRow> = merged
        .iter()
        .map(|(route, all, cpu, wall, rss)| {
            let latency = summaries[route.name()];
            let overhead = (route.baseline() != *route).then(|| {
                let base = summaries[route.baseline().name()];
                (
                    latency.p50 - base.p50,
                    latency.p90 - base.p90,
                    latency.p99 - base.p99,
                )
            });
            PathRow {
                route: *route,
                latency,
                overhead,
                sent: all.sent,
                errors: all.errors,
                achieved: all.achieved_rate,
                cpu_share: if *wall > 0.0 { cpu / wall } else { 0.0 },
                rss_mib: *rss as f64 / (1024.0 * 1024.0),
            }
        })
        .collect();
    let pass = paths
        .iter()
        .filter(|p| matches!(p.route, Route::Router | Route::RouterChat))
        .all(|p| p.errors == 0 && p.overhead.is_some_and(|o| o.2 <= TARGET_P99_MS));
    RateRow {
        rate,
        paths,
        load,
        pass,
    }
}

impl RateRow {
    fn json(&self) -> Value {
        let paths: Vec<Value> = self
            .paths
            .iter()
            .map(|p| {
                json!({
                    "path": p.route.name(),
                    "latency_ms": {"p50": p.latency.p50, "p90": p.latency.p90, "p99": p.latency.p99},
                    "overhead_ms": p.overhead.map(|o| json!({"p50": o.0, "p90": o.1, "p99": o.2})),
                    "sent": p.sent, "errors": p.errors, "achieved_rate": p.achieved,
                    "cpu_share": p.cpu_share, "rss_mib": p.rss_mib,
                })
            })
            .collect();
        json!({"rate": self.rate, "machine_load": self.load, "paths": paths, "pass": self.pass})
    }
}

fn table(s: &Setup<'_>, rows: &[RateRow]) -> String {
    let mut out = format!(
        "router overhead side by side: {} connections per path, {:?} per path per rate in {} \
         interleaved rounds, {:?} warm-up; latency from each request's due time\n",
        s.connections, s.duration, s.rounds, s.warmup
    );
    for row in rows {
        out.push_str(&format!(
            "\n{} req/s (machine busy {:.0} %): {}\n{:<30} {:>8} {:>8} {:>8} {:>17} {:>7} {:>9} {:>6} {:>8}\n",
            row.rate,
            row.load * 100.0,
            if row.pass { "PASS" } else { "FAIL" },
            "path",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "overhead p50/p99",
            "errors",
            "achieved",
            "CPU",
            "RSS MiB"
        ));
        for p in &row.paths {
            let overhead = p
                .overhead
                .map_or_else(|| "-".to_string(), |o| format!("{:.2}/{:.2}", o.0, o.2));
            out.push_str(&format!(
                "{:<30} {:>8.2} {:>8.2} {:>8.2} {:>17} {:>7} {:>9.0} {:>5.0}% {:>8.1}\n",
                p.route.name(),
                p.latency.p50,
                p.latency.p90,
                p.latency.p99,
                overhead,
                p.errors,
                p.achieved,
                p.cpu_share * 100.0,
                p.rss_mib
            ));
        }
    }
    out
}
