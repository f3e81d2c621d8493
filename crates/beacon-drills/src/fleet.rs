//! A drill's system: simulators in this process (their faults changed and their call
//! logs read directly), a `beacon-router` child with one provider per simulator (which
//! a drill may kill and start again on the same port), and any number of
//! `beacon-runner` children on a database the drill chooses, each ready when its
//! `/readyz` answers 200. Logs and configs live in a scratch directory (kept, and its
//! path printed, when `BEACON_DRILLS_KEEP=1`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use beacon_core::Region;
use beacon_core::receipt::sha256_hex;
use beacon_sim::{CallRecord, Faults, SimConfig, SimHandle, Simulator};
use ed25519_dalek::SigningKey;
use serde_json::Value;

use crate::api::{RouterApi, RunnerApi, http_client};
use crate::audit::prompt_index;
use crate::bins::{Binaries, binaries};
use crate::config::{PROBE_PROMPT, RouterSettings, RunnerSettings};
use crate::procs::{ChildEnv, Scratch, Service};
use crate::spec::{Shape, SpecText, sign, unsigned_spec};

/// How long a runner may take from its `listening on` line to `/readyz` 200.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// The drills' words in a job's spec. Question `i` is `drill_q{i}`; its text names the
/// job (`question_text` = `Drill <job id> question`), so jobs of one drill never share
/// a prompt and each simulator call belongs to one job.
pub fn drill_text(question_text: &str) -> SpecText<'_> {
    SpecText {
        benchmark: "beacon-drills",
        description: "beacon-drills process-level drill",
        question_id: "drill_q",
        question_text,
        category: "drill",
    }
}

/// The question text prefix of job `id`.
pub fn job_question_text(id: &str) -> String {
    format!("Drill {id} question")
}

/// prompt SHA-256 → question id for job `id` of `shape` (see [`crate::audit`]).
pub fn job_prompts(id: &str, shape: &Shape) -> HashMap<String, String> {
    prompt_index(&drill_text(&job_question_text(id)), shape.questions)
}

/// One simulator call with the region of the simulator that logged it.
#[derive(Debug, Clone)]
pub struct RegionCall {
    pub region: String,
    pub call: CallRecord,
}

/// In-process simulators, one per region.
pub struct Sims {
    sims: Vec<(String, SimHandle)>,
}

impl Sims {
    /// One simulator per region with its faults, seeded with `seed` + the region's index
    /// (each region draws its own faults, reproducibly).
    pub async fn start(
        regions: &[&str],
        seed: u64,
        faults: impl Fn(&str) -> Faults,
    ) -> anyhow::Result<Sims> {
        let mut sims = Vec::new();
        for (i, region) in regions.iter().enumerate() {
            let parsed = Region::parse(region).map_err(|e| anyhow::anyhow!("{region}: {e}"))?;
            let cfg = SimConfig::for_region(parsed)
                .with_faults(faults(region))
                .with_seed(seed.wrapping_add(i as u64));
            let sim = Simulator::start(cfg)
                .await
                .with_context(|| format!("cannot start the {region} simulator"))?;
            sims.push((region.to_string(), sim));
        }
        Ok(Sims { sims })
    }

    pub fn get(&self, region: &str) -> anyhow::Result<&SimHandle> {
        self.sims
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, s)| s)
            .with_context(|| format!("no simulator for {region}"))
    }

    /// `(region, URL)` of every simulator.
    pub fn providers(&self) -> Vec<(String, String)> {
        self.sims
            .iter()
            .map(|(r, s)| (r.clone(), s.url()))
            .collect()
    }

    /// Every call of every simulator, the router's probes left out.
    pub fn live_calls(&self) -> Vec<RegionCall> {
        let probe = sha256_hex(PROBE_PROMPT);
        self.sims
            .iter()
            .flat_map(|(region, sim)| {
                sim.stats()
                    .calls
                    .into_iter()
                    .filter(|c| c.prompt_sha256 != probe)
                    .map(|call| RegionCall {
                        region: region.clone(),
                        call,
                    })
            })
            .collect()
    }

    /// Live calls still open (running or queued) right now.
    pub fn open_calls(&self) -> usize {
        self.live_calls()
            .iter()
            .filter(|c| c.call.ended_at.is_none())
            .count()
    }

    /// Waits until no live call is open (a client that gave up is noticed by the
    /// simulator a moment later), so call logs are final before they are compared.
    pub async fn wait_quiet(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let open = self.open_calls();
            if open == 0 {
                return Ok(());
            }
            if start.elapsed() > limit {
                anyhow::bail!("{open} simulator calls still open after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(self) {
        for (_, s) in self.sims {
            s.shutdown().await;
        }
    }
}

/// Simulators, a router child, a scratch directory, and a key to sign specs with.
pub struct Fleet {
    pub sims: Sims,
    pub router: Service,
    pub router_api: RouterApi,
    pub bins: &'static Binaries,
    pub key: SigningKey,
    pub http: reqwest::Client,
    scratch: Scratch,
    /// The router's TOML file, the same for every start.
    router_config: PathBuf,
    /// The router's extra environment, the same for every start.
    router_env: Vec<(String, String)>,
    /// Router starts so far (each gets a log of its own).
    router_starts: u32,
}

impl Fleet {
    /// Most drills' system: one simulator per region answering after `latency_ms` and
    /// otherwise without faults (seeded with `seed`), behind a router child with the
    /// default settings.
    pub async fn steady(seed: u64, latency_ms: u64) -> anyhow::Result<Fleet> {
        let latency = Faults {
            latency_ms,
            ..Faults::default()
        };
        let sims = Sims::start(&crate::spec::REGIONS, seed, |_| latency.clone()).await?;
        Fleet::start(sims, &RouterSettings::default()).await
    }

    /// Builds the binaries (once per process), then starts the router child on `sims`.
    pub async fn start(sims: Sims, router: &RouterSettings) -> anyhow::Result<Fleet> {
        let bins = binaries()?;
        let router_env = router.extra_env.clone();
        let mut scratch = Scratch::new("beacon-drill")?;
        if std::env::var("BEACON_DRILLS_KEEP").as_deref() == Ok("1") {
            scratch.keep();
            eprintln!(
                "beacon-drills: keeping logs in {}",
                scratch.path().display()
            );
        }
        let toml_path = scratch.path().join("router.toml");
        std::fs::write(&toml_path, router.toml(&sims.providers())?)
            .with_context(|| format!("cannot write {}", toml_path.display()))?;
        let router = spawn_router(
            bins,
            &toml_path,
            None,
            &router.extra_env,
            &scratch.path().join("router.log"),
        )
        .await?;
        let http = http_client()?;
        Ok(Fleet {
            sims,
            router_api: RouterApi::new(http.clone(), router.url()),
            router,
            bins,
            key: SigningKey::from_bytes(&[5u8; 32]),
            http,
            scratch,
            router_config: toml_path,
            router_env,
            router_starts: 1,
        })
    }

    /// Starts the router again, after it was killed or stopped, with the same config
    /// file and on the port it had (`--listen`), so every runner's `ROUTER_URL` is right
    /// again. Fails if the old router still runs or the port is taken. The new start
    /// logs to `router-<n>.log`.
    pub async fn restart_router(&mut self) -> anyhow::Result<()> {
        self.router
            .wait_exit(Duration::ZERO)
            .await
            .context("restart_router: the router has not exited")?;
        let url = self.router.url().to_string();
        let addr = url
            .strip_prefix("http://")
            .with_context(|| format!("the router's URL {url} is not http://ADDR"))?;
        let log = self
            .scratch
            .path()
            .join(format!("router-{}.log", self.router_starts));
        self.router_starts += 1;
        let router = spawn_router(
            self.bins,
            &self.router_config,
            Some(addr),
            &self.router_env,
            &log,
        )
        .await?;
        if router.url() != url {
            anyhow::bail!(
                "the restarted router listens on {}, not on {url}",
                router.url()
            );
        }
        self.router = router;
        Ok(())
    }

    /// Starts a runner child on `database_url` and waits until `/readyz` is 200.
    pub async fn runner(
        &self,
        settings: &RunnerSettings,
        database_url: &str,
    ) -> anyhow::Result<RunnerChild> {
        self.runner_via(settings, database_url, self.router.url())
            .await
    }

    /// [`Fleet::runner`] with `ROUTER_URL` = `router_url` (a proxy in front of the
    /// router, e.g. a [`crate::hostile::LyingRouter`]).
    pub async fn runner_via(
        &self,
        settings: &RunnerSettings,
        database_url: &str,
        router_url: &str,
    ) -> anyhow::Result<RunnerChild> {
        let dir = self.scratch.path();
        let toml_path = dir.join(format!("{}.toml", settings.instance_id));
        std::fs::write(&toml_path, settings.toml()?)
            .with_context(|| format!("cannot write {}", toml_path.display()))?;
        let env = settings.env(database_url, router_url);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // Numbered: a restarted instance gets a log of its own, the first one stays.
        static STARTS: AtomicU32 = AtomicU32::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = dir.join(format!("{}-{n}.log", settings.instance_id));
        let started = Instant::now();
        let service = Service::spawn(
            "beacon-runner",
            &self.bins.runner,
            [OsStr::new("--config"), toml_path.as_os_str()],
            ChildEnv::Only(&env),
            &log,
        )
        .await?;
        let api = RunnerApi::new(self.http.clone(), service.url());
        if let Err(e) = api.wait_ready(READY_LIMIT).await {
            anyhow::bail!("{e:#}{}", service.log_tail());
        }
        Ok(RunnerChild {
            service,
            api,
            settings: settings.clone(),
            ready_in: started.elapsed(),
        })
    }

    /// A signed spec of `shape` with the drills' questions (see [`drill_text`]) and
    /// `constraints`.
    pub fn spec(&self, id: &str, shape: &Shape, constraints: Value) -> anyhow::Result<Value> {
        let text = job_question_text(id);
        let spec = unsigned_spec(
            id,
            shape,
            &drill_text(&text),
            constraints,
            serde_json::json!({"temperature": 0.1, "max_tokens": 32}),
        )?;
        sign(&spec, &self.key)
    }

    /// Stops the router child and the simulators.
    pub async fn shutdown(self) {
        drop(self.router);
        self.sims.shutdown().await;
    }
}

/// A router child on `config`, on `listen` (`HOST:PORT`) when given instead of the
/// file's free port, with `extra_env` on top of its own variables.
async fn spawn_router(
    bins: &Binaries,
    config: &Path,
    listen: Option<&str>,
    extra_env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Service> {
    let mut args: Vec<OsString> = vec!["--config".into(), config.as_os_str().to_owned()];
    if let Some(addr) = listen {
        args.extend(["--listen".into(), addr.into()]);
    }
    let mut env: Vec<(&str, &str)> = vec![
        ("RUST_LOG", "info"),
        (
            crate::config::INFERENCE_TOKEN_ENV,
            crate::config::INFERENCE_TOKEN,
        ),
    ];
    env.extend(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Service::spawn(
        "beacon-router",
        &bins.router,
        args,
        ChildEnv::Only(&env),
        log,
    )
    .await
}

/// A runner child and its API.
pub struct RunnerChild {
    pub service: Service,
    pub api: RunnerApi,
    pub settings: RunnerSettings,
    /// From spawning it to `/readyz` 200 (migrations included).
    pub ready_in: Duration,
}

impl RunnerChild {
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    pub fn instance_id(&self) -> &str {
        &self.settings.instance_id
    }

    /// The last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        self.service.log_tail()
    }
}
