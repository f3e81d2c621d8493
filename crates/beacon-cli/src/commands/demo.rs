//! `beacon demo`: three simulated regional providers with the demo personas, a router
//! and a runner on SQLite in `--dir`, all in this process on free ports; a signed sample
//! job (the catalogue's questions × three models × three regions); live progress; the
//! result; and, with `--serve`, everything kept up for the other commands to explore.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use beacon_core::Region;
use beacon_sim::{FaultPatch, Faults, Scenario, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

use crate::cli::DemoArgs;
use crate::client::Client;
use crate::exit;
use crate::keys;
use crate::summary;

const DEFAULT_REGIONS: [&str; 3] = ["us-east", "eu-west", "asia-pacific"];

/// Parses `eu-west:error_rate=0.2,hang_rate=0.05;us-east:latency_ms=50` (also repeated).
pub fn parse_faults(items: &[String]) -> anyhow::Result<HashMap<Region, FaultPatch>> {
    let mut out = HashMap::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (region, knobs) = item
            .split_once(':')
            .with_context(|| format!("--faults {item:?}: expected REGION:key=value,…"))?;
        let region = Region::parse(region).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
        let mut obj = serde_json::Map::new();
        for kv in knobs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--faults {kv:?}: expected key=value"))?;
            let value: Value = serde_json::from_str(v.trim())
                .unwrap_or_else(|_| Value::String(v.trim().to_string()));
            obj.insert(k.trim().to_string(), value);
        }
        let patch: FaultPatch = serde_json::from_value(Value::Object(obj))
            .map_err(|e| anyhow::anyhow!("--faults {item:?}: {e} (keys: error_rate, empty_rate, hang_rate, malformed_rate, drop_rate, latency_ms, jitter_ms, cold_start_ms, inference_broken, health_broken, …)"))?;
        out.insert(region, patch);
    }
    Ok(out)
}

struct Services {
    sims: Vec<(Region, SimHandle)>,
    router: beacon_router::RouterHandle,
    runner: beacon_runner::RunnerHandle,
    admin_token: String,
    /// `CORS_ORIGINS` as given to both services (`None`: their local dev defaults).
    cors_origins: Option<String>,
}

/// The demo builds its services' configurations in process, from nothing but its own
/// settings; the one outside variable it passes on is `CORS_ORIGINS`, so a portal
/// served from another origin can use `demo --serve` (runner and router alike).
fn inherited_cors_origins() -> Option<String> {
    std::env::var("CORS_ORIGINS")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

impl Services {
    async fn shutdown(self) {
        self.runner.shutdown().await;
        self.router.shutdown().await;
        for (_, s) in self.sims {
            s.shutdown().await;
        }
    }
}

async fn start_services(
    args: &DemoArgs,
    regions: &[Region],
    models: &[String],
) -> anyhow::Result<Services> {
    let faults = parse_faults(&args.faults)?;
    let scenario = Scenario::demo().map_err(|e| anyhow::anyhow!("demo scenario: {e}"))?;
    let mut sims = Vec::new();
    let mut providers = String::new();
    for region in regions {
        let base = Faults {
            latency_ms: args.latency_ms,
            jitter_ms: args.latency_ms / 3,
            ..Faults::default()
        };
        let f = match faults.get(region) {
            Some(p) => base
                .patched(p)
                .map_err(|e| anyhow::anyhow!("--faults for {region}: {}", e.0))?,
            None => base,
        };
        let mut cfg = SimConfig::for_region(region.clone())
            .with_scenario(scenario.clone())
            .with_faults(f)
            .with_seed(7);
        cfg.models = models.to_vec();
        let sim = Simulator::start(cfg).await?;
        let model_list: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
        providers.push_str(&format!(
            "[[providers]]\nname = \"demo-{region}\"\nkind = \"modal\"\nregion = \"{region}\"\nurl = \"{}/\"\nmodels = [{}]\nmax_concurrency = 8\nqueue_timeout = \"30s\"\nrequest_timeout = \"20s\"\n",
            sim.url(),
            model_list.join(", ")
        ));
        sims.push((region.clone(), sim));
    }
    let router_toml = format!(
        "listen = \"127.0.0.1:0\"\n[auth]\ninference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n[health]\nprobe_interval = \"10s\"\nskip_probe_if_live_success_within = \"10s\"\nprobe_timeout = \"10s\"\nunhealthy_after = 3\neject_base = \"5s\"\neject_max = \"30s\"\n{providers}"
    );
    let cors_origins = inherited_cors_origins();
    let cors = cors_origins.clone();
    // A fresh inference token per demo run, given to the router and the runner only:
    // the demo runs the real authenticated path (router.md, [auth]).
    let inference_token = hex::encode(keys::generate().to_bytes());
    let router_token = inference_token.clone();
    let router_env = move |k: &str| match k {
        "CORS_ORIGINS" => cors.clone(),
        "ROUTER_INFERENCE_TOKEN" => Some(router_token.clone()),
        _ => None,
    };
    let router_cfg = beacon_router::Config::from_toml(&router_toml, &router_env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let router = beacon_router::start(router_cfg).await?;

    let runner_key = keys::read_or_create(&args.dir.join("runner.key"))?;
    let admin_token = hex::encode(keys::generate().to_bytes())[..32].to_string();
    let db = format!("sqlite://{}", args.dir.join("beacon.db").display());
    let (router_url, token) = (router.url.clone(), admin_token.clone());
    let cors = cors_origins.clone();
    let env = move |k: &str| match k {
        "DATABASE_URL" => Some(db.clone()),
        "ROUTER_URL" => Some(router_url.clone()),
        "RUNNER_SIGNING_KEY" => Some(beacon_core::signing::encode_signing_key(&runner_key)),
        "RUNNER_ADMIN_TOKEN" => Some(token.clone()),
        "ROUTER_TOKEN" => Some(inference_token.clone()),
        "CORS_ORIGINS" => cors.clone(),
        _ => None,
    };
    let runner_toml = "listen = \"127.0.0.1:0\"\n[scheduler]\nmax_concurrency_per_job = 24\npoll_interval = \"100ms\"\nbackoff_base = \"500ms\"\nbackoff_max = \"5s\"\nmax_wait_for_provider = \"6s\"\n";
    let runner_cfg =
        beacon_runner::Config::from_toml(runner_toml, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runner = beacon_runner::start(runner_cfg).await?;
    Ok(Services {
        sims,
        router,
        runner,
        admin_token,
        cors_origins,
    })
}

fn sample_job(args: &DemoArgs, regions: &[Region], models: &[String]) -> anyhow::Result<Value> {
    let catalogue = beacon_core::Catalogue::builtin();
    let questions: Vec<String> = if args.questions.is_empty() {
        catalogue
            .questions()
            .iter()
            .map(|q| q.id.to_string())
            .collect()
    } else {
        args.questions.clone()
    };
    let id = format!("demo-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f"));
    Ok(json!({
        "id": id,
        "version": "v1",
        "benchmark": {"name": "bias-detection", "version": "v1", "description": "Beacon demo: the question catalogue across three regions"},
        "questions": questions,
        "models": models,
        "constraints": {"regions": regions.iter().map(Region::as_str).collect::<Vec<_>>(), "min_success_rate": 0.67, "timeout": "10m", "provider_timeout": "30s"},
        "params": {"temperature": if args.runs > 1 { 0.7 } else { 0.1 }, "max_tokens": 300},
        "runs": args.runs,
        "metadata": {"created_by": "beacon demo"},
    }))
}

pub async fn demo(args: DemoArgs, as_json: bool) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let regions: Vec<Region> = if args.regions.is_empty() {
        DEFAULT_REGIONS
            .iter()
            .filter_map(|r| Region::parse(r).ok())
            .collect()
    } else {
        args.regions
            .iter()
            .map(|r| Region::parse(r).map_err(|e| anyhow::anyhow!("--regions: {e}")))
            .collect::<Result<_, _>>()?
    };
    let models: Vec<String> = if args.models.is_empty() {
        beacon_sim::DEFAULT_MODELS
            .iter()
            .map(|m| m.to_string())
            .collect()
    } else {
        args.models.clone()
    };
    let services = start_services(&args, &regions, &models).await?;
    let outcome = run_job(&args, &services, &regions, &models, as_json).await;
    if args.serve {
        print_serve(&args.dir, &services);
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping…");
    }
    services.shutdown().await;
    outcome
}

async fn run_job(
    args: &DemoArgs,
    s: &Services,
    regions: &[Region],
    models: &[String],
    as_json: bool,
) -> anyhow::Result<u8> {
    let spec = sample_job(args, regions, models)?;
    let submitter = keys::read_or_create(&args.dir.join("submitter.key"))?;
    let signed = keys::sign_spec(&spec, &submitter)?;
    let id = signed["id"].as_str().unwrap_or("demo").to_string();
    let spec_path = args.dir.join(format!("{id}.json"));
    std::fs::write(&spec_path, serde_json::to_string_pretty(&signed)? + "\n")?;
    let client = Client::new(&s.runner.url);
    let (_, accepted) = client
        .post("/api/v1/jobs", &signed)
        .await
        .map_err(|e| anyhow::anyhow!("submitting the demo job: {e}"))?;
    if !as_json {
        eprintln!(
            "beacon demo: job {id}: {} questions × {} models × {} regions = {} executions",
            signed["questions"].as_array().map_or(0, Vec::len),
            models.len(),
            regions.len(),
            accepted["total_executions"]
        );
    }
    let job = crate::progress::watch(&client, &id, !as_json)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = client.get(&format!("/api/v1/jobs/{id}/report")).await.ok();
    let html_path = args.dir.join(format!("{id}.html"));
    let html_written = match client
        .get_text(&format!("/api/v1/jobs/{id}/report.html"))
        .await
    {
        Ok(page) => std::fs::write(&html_path, page).is_ok(),
        Err(_) => false,
    };
    if as_json {
        println!(
            "{}",
            json!({"job": {"id": id, "status": job["status"], "progress": job["progress"]}, "report": report, "dir": args.dir})
        );
    } else {
        println!("{}", summary::job_summary(&job));
        match &report {
            Some(r) => println!("{}", summary::analysis_table(r)),
            None => println!("{}", summary::answers_table(&job)),
        }
        println!(
            "results: {} (SQLite), signed spec {}{}",
            args.dir.join("beacon.db").display(),
            spec_path.display(),
            if html_written {
                format!(", report {}", html_path.display())
            } else {
                String::new()
            }
        );
        if !args.serve {
            println!(
                "re-run with --serve to keep the services up and explore with `beacon report`, `beacon verify`, `beacon doctor`"
            );
        }
    }
    Ok(if crate::progress::is_terminal(&job) {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn print_serve(dir: &Path, s: &Services) {
    println!("\nserving (Ctrl-C stops):");
    println!("  runner  {}   (API under /api/v1)", s.runner.url);
    println!("  router  {}", s.router.url);
    for (region, sim) in &s.sims {
        println!("  sim     {}   ({region})", sim.url());
    }
    println!("  data    {}", dir.display());
    match &s.cors_origins {
        Some(list) => println!("  cors    {list}   (CORS_ORIGINS, runner and router)"),
        None => println!(
            "  cors    http://localhost:3000, :5173 (and 127.0.0.1)   (set CORS_ORIGINS for another portal origin)"
        ),
    }
    println!("\ntry:");
    println!("  export BEACON_RUNNER_URL={}", s.runner.url);
    println!(
        "  beacon doctor --router {} --token {}",
        s.router.url, s.admin_token
    );
    println!("  beacon report <job>     beacon verify <job>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_flags_parse_per_region_with_aliases() {
        let f = parse_faults(&[
            "eu-west:error_rate=0.2,hang_rate=0.05;US:inference_broken=true".into(),
        ])
        .unwrap();
        assert_eq!(f[&Region::eu_west()].error_rate, Some(0.2));
        assert_eq!(f[&Region::eu_west()].hang_rate, Some(0.05));
        assert_eq!(f[&Region::us_east()].inference_broken, Some(true));
        assert!(parse_faults(&["eu-west:colour=red".into()]).is_err());
        assert!(parse_faults(&["Mars:error_rate=1".into()]).is_err());
        assert!(parse_faults(&["eu-west".into()]).is_err());
    }
}
