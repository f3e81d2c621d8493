//! One system under test: three `beacon-sim` (one per region), a `beacon-router` with
//! one Modal provider per simulator, and a `beacon-runner` on a fresh database, all
//! release binaries started as child processes with an environment of exactly the
//! variables they need. Dropping the stack kills the runner first, then the router and
//! the simulators, then drops the database and the scratch directory.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use beacon_core::signing::encode_signing_key;

use super::api::{RunnerApi, SimApi, http_client};
use super::cpu::{CpuSnapshot, Role};
use super::db::{Backend, Database};
use super::spec::{REGIONS, new_key};
use crate::procs::{ChildEnv, Scratch, Service};

/// The router's health-probe prompt: distinctive, so the probes can be told apart from
/// the job's calls in the simulators' logs.
pub const PROBE_PROMPT: &str = "beacon-bench health probe: reply OK.";
/// How long the runner may take from its `listening on` line to `/readyz` 200.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// What to start.
#[derive(Debug, Clone)]
pub struct StackSpec<'a> {
    pub backend: Backend,
    /// The simulators' service time per call.
    pub latency: Duration,
    /// Models every simulator and every router provider serves.
    pub models: &'a [String],
    /// The runner's `max_concurrency`, `_per_job` and `_per_region`.
    pub concurrency: u32,
    /// A PostgreSQL URL to create the database from.
    pub postgres_url: &'a str,
    pub bin_dir: &'a Path,
}

/// The running processes, in drop order.
pub struct Stack {
    pub runner: Service,
    pub router: Service,
    pub sims: Vec<(&'static str, Service)>,
    pub db: Database,
    pub runner_api: RunnerApi,
    pub sim_apis: Vec<SimApi>,
    /// From starting the runner to `/readyz` answering 200 (migrations included).
    pub runner_ready_in: Duration,
    scratch: Scratch,
}

impl Stack {
    pub async fn start(spec: &StackSpec<'_>) -> anyhow::Result<Stack> {
        let scratch = Scratch::new("beacon-bench-runner")?;
        let dir = scratch.path();
        let db = Database::create(spec.backend, dir, spec.postgres_url).await?;
        let http = http_client()?;
        let latency = format!("{}ms", spec.latency.as_millis());
        let models = spec.models.join(",");
        let mut sims = Vec::new();
        for region in REGIONS {
            let sim = Service::spawn(
                "beacon-sim",
                &spec.bin_dir.join("beacon-sim"),
                [
                    "--listen",
                    "127.0.0.1:0",
                    "--region",
                    region,
                    "--latency",
                    &latency,
                    "--models",
                    &models,
                ],
                ChildEnv::Only(&[]),
                &dir.join(format!("sim-{region}.log")),
            )
            .await?;
            sims.push((region, sim));
        }
        let router_toml = dir.join("router.toml");
        std::fs::write(&router_toml, router_config(&sims, spec.models))
            .with_context(|| format!("cannot write {}", router_toml.display()))?;
        let router = Service::spawn(
            "beacon-router",
            &spec.bin_dir.join("beacon-router"),
            [OsStr::new("--config"), router_toml.as_os_str()],
            ChildEnv::Only(&[("ROUTER_INFERENCE_TOKEN", crate::load::ROUTER_TOKEN)]),
            &dir.join("router.log"),
        )
        .await?;
        let runner_toml = dir.join("runner.toml");
        std::fs::write(&runner_toml, runner_config(spec.concurrency))
            .with_context(|| format!("cannot write {}", runner_toml.display()))?;
        let receipt_key = encode_signing_key(&new_key()?);
        let started = Instant::now();
        let runner = Service::spawn(
            "beacon-runner",
            &spec.bin_dir.join("beacon-runner"),
            [OsStr::new("--config"), runner_toml.as_os_str()],
            ChildEnv::Only(&[
                ("ROUTER_URL", router.url()),
                ("DATABASE_URL", db.url()),
                ("RUNNER_SIGNING_KEY", &receipt_key),
                ("ROUTER_TOKEN", crate::load::ROUTER_TOKEN),
            ]),
            &dir.join("runner.log"),
        )
        .await?;
        let runner_api = RunnerApi::new(http.clone(), runner.url());
        runner_api.wait_ready(READY_LIMIT).await?;
        let runner_ready_in = started.elapsed();
        let sim_apis = sims
            .iter()
            .map(|(region, s)| SimApi::new(http.clone(), s.url(), region))
            .collect();
        Ok(Stack {
            runner,
            router,
            sims,
            db,
            runner_api,
            sim_apis,
            runner_ready_in,
            scratch,
        })
    }

    /// Keeps the scratch directory (configs, logs, SQLite file) and the PostgreSQL
    /// database after the stack is dropped, and says where they are.
    pub fn keep(&mut self) {
        self.scratch.keep();
        let url = crate::runner::db::redact(self.db.keep());
        eprintln!(
            "beacon-bench runner: kept {} (logs, configs) and the database {url}",
            self.scratch.path().display()
        );
    }

    /// Fails if a child has exited (each should serve until killed).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.runner.check_alive()?;
        self.router.check_alive()?;
        for (_, sim) in &mut self.sims {
            sim.check_alive()?;
        }
        Ok(())
    }

    /// CPU used so far by every process of the stack, this benchmark and the database
    /// server's processes for the runner's database.
    pub async fn cpu_snapshot(&self) -> CpuSnapshot {
        let mut pids = vec![
            (Role::Runner, self.runner.pid()),
            (Role::Router, self.router.pid()),
            (Role::Bench, std::process::id()),
        ];
        pids.extend(self.sims.iter().map(|(_, s)| (Role::Sims, s.pid())));
        pids.extend(
            self.db
                .server_pids()
                .await
                .into_iter()
                .map(|p| (Role::Postgres, p)),
        );
        CpuSnapshot::take(&pids)
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|m| format!("{m:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One Modal provider per simulator, generous limits (the runner's limit is the one
/// under test), probes once at start and then hourly, with a prompt of their own.
fn router_config(sims: &[(&'static str, Service)], models: &[String]) -> String {
    let mut out = format!(
        "listen = \"127.0.0.1:0\"\n\n{}\n[health]\nprobe_interval = \"1h\"\nprobe_prompt = {PROBE_PROMPT:?}\n",
        crate::load::ROUTER_AUTH_TOML
    );
    for (region, sim) in sims {
        out.push_str(&format!(
            "\n[[providers]]\nname = \"sim-{region}\"\nkind = \"modal\"\nregion = \"{region}\"\n\
             url = \"{}/\"\nmodels = {}\nmax_concurrency = 1024\nqueue_timeout = \"30s\"\n",
            sim.url().trim_end_matches('/'),
            toml_list(models),
        ));
    }
    out
}

/// The runner on a free port, signed specs required, the concurrency under test for
/// the instance, the job and each region, one job at a time; everything else as
/// shipped. (`poll_interval` stays at its default: a submitted job is claimed at once
/// by notification, and a 50 ms interval had the transparency appender, which runs on
/// the same interval, append 40 small batches during each 2 s job.)
fn runner_config(concurrency: u32) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nsubmissions_per_minute = 1000\n\n\
         [signatures]\npolicy = \"required\"\n\n\
         [scheduler]\nmax_concurrency = {concurrency}\nmax_concurrency_per_job = {concurrency}\n\
         max_concurrency_per_region = {concurrency}\nmax_jobs = 1\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_config_sets_every_limit() {
        let toml = runner_config(90);
        for key in [
            "max_concurrency = 90",
            "max_concurrency_per_job = 90",
            "max_concurrency_per_region = 90",
            "max_jobs = 1",
            "policy = \"required\"",
        ] {
            assert!(toml.contains(key), "{key} missing from {toml}");
        }
        assert!(!toml.contains("poll_interval"), "{toml}");
        assert_eq!(
            toml_list(&["a".to_string(), "m00".to_string()]),
            "[\"a\", \"m00\"]"
        );
    }
}
