//! Test harness: three regional simulators, a router and a runner, all real, in this
//! process on port 0, over real HTTP, on SQLite (a temp file) or PostgreSQL (a fresh
//! database). Readiness is the bound socket; waiting is polling, never sleeping.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

pub mod portal;

use beacon_core::Region;
use beacon_core::receipt::sha256_hex;
use beacon_router::RouterHandle;
use beacon_runner::{Config, RunnerHandle};
use beacon_sim::{CallRecord, Faults, SimConfig, SimHandle, Simulator};
use beacon_store::testing::{PgTestDb, TempPath, postgres_store};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "asia-pacific"];
pub const MODELS: [&str; 3] = ["llama3.2-1b", "mistral-7b", "qwen2.5-1.5b"];
pub const PROBE_PROMPT: &str = "Reply with the single word OK.";

/// Runs one test body on each backend as two tests.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(Backend::Postgres).await;
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, removed when dropped.
pub struct Db {
    pub url: String,
    _sqlite: Option<TempPath>,
    pg: Option<PgTestDb>,
}

impl Db {
    /// `None` when PostgreSQL is unreachable and not required (the harness says so loudly).
    pub async fn new(backend: Backend) -> Option<Db> {
        match backend {
            Backend::Sqlite => {
                let tmp = TempPath::new();
                Some(Db {
                    url: tmp.sqlite_url(),
                    _sqlite: Some(tmp),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let (store, pg) = postgres_store().await?;
                drop(store);
                Some(Db {
                    url: pg.url().to_string(),
                    _sqlite: None,
                    pg: Some(pg),
                })
            }
        }
    }
}

/// What differs between tests.
#[derive(Clone, Default)]
pub struct Opts {
    /// Faults per region (default: none, zero latency).
    pub faults: HashMap<&'static str, Faults>,
    /// Models a region's simulator really serves (default: all three); the router is
    /// still told the provider serves all three.
    pub sim_models: HashMap<&'static str, Vec<String>>,
    /// Extra `[scheduler]` lines for the runner (e.g. `enabled = false`).
    pub scheduler: String,
    /// Regions to run simulators in (default: all three).
    pub regions: Vec<&'static str>,
    /// The router's `unhealthy_after` (default 3).
    pub unhealthy_after: Option<u32>,
    /// Run the simulators on the built-in demo scenario (`beacon_sim::Scenario::demo()`):
    /// designed regional differences on the catalogue questions.
    pub scenario: bool,
    /// More runner TOML after the `[scheduler]` table (e.g. a `[limits]` table).
    pub runner_tables: String,
}

pub struct Stack {
    pub sims: Vec<(&'static str, SimHandle)>,
    pub router: RouterHandle,
    pub runner: RunnerHandle,
    pub db: Db,
    pub key: SigningKey,
    pub http: reqwest::Client,
}

/// Runner scheduler settings for tests: fast polling and backoff.
pub const FAST_SCHEDULER: &str = "poll_interval = \"50ms\"\nheartbeat = \"500ms\"\nlease = \"5s\"\nbackoff_base = \"20ms\"\nbackoff_max = \"200ms\"\nshutdown_grace = \"5s\"\n";

/// A runner config: signed specs required, fast scheduler, `scheduler` lines added
/// to the `[scheduler]` table (later keys must not repeat earlier ones).
pub fn runner_config(db_url: &str, router_url: &str, scheduler: &str) -> Config {
    runner_config_with(db_url, router_url, scheduler, "")
}

/// [`runner_config`] with more tables after `[scheduler]`.
pub fn runner_config_with(db_url: &str, router_url: &str, scheduler: &str, tables: &str) -> Config {
    let toml_text = format!(
        "listen = \"127.0.0.1:0\"\n[scheduler]\n{scheduler}\n{}\n{tables}",
        fast_without(scheduler)
    );
    let (db, router) = (db_url.to_string(), router_url.to_string());
    let env = move |k: &str| match k {
        "DATABASE_URL" => Some(db.clone()),
        "ROUTER_URL" => Some(router.clone()),
        "RUNNER_SIGNING_KEY" => Some(beacon_core::signing::encode_signing_key(
            &SigningKey::from_bytes(&[9u8; 32]),
        )),
        "RUNNER_ADMIN_TOKEN" => Some("runner-admin-token".to_string()),
        "ROUTER_TOKEN" => Some(ROUTER_TOKEN.to_string()),
        _ => None,
    };
    Config::from_toml(&toml_text, &env).unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
}

/// The fast settings minus the keys `overrides` sets itself.
fn fast_without(overrides: &str) -> String {
    let set: Vec<&str> = overrides
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    FAST_SCHEDULER
        .lines()
        .filter(|l| !set.contains(&l.split('=').next().unwrap_or("").trim()))
        .map(|l| format!("{l}\n"))
        .collect()
}

impl Stack {
    pub async fn start(backend: Backend, opts: Opts) -> Option<Stack> {
        let db = Db::new(backend).await?;
        let regions = if opts.regions.is_empty() {
            REGIONS.to_vec()
        } else {
            opts.regions.clone()
        };
        let mut sims = Vec::new();
        for region in regions {
            let mut cfg = SimConfig::for_region(Region::parse(region).unwrap())
                .with_faults(opts.faults.get(region).cloned().unwrap_or_default());
            if let Some(models) = opts.sim_models.get(region) {
                cfg.models = models.clone();
            }
            if opts.scenario {
                cfg = cfg.with_scenario(beacon_sim::Scenario::demo().unwrap());
            }
            let sim = Simulator::start(cfg).await.unwrap();
            sims.push((region, sim));
        }
        let router_toml = router_toml(&sims, "127.0.0.1:0", opts.unhealthy_after);
        let router_cfg = beacon_router::Config::from_toml(&router_toml, &router_env).unwrap();
        let router = beacon_router::start(router_cfg).await.unwrap();
        let runner = beacon_runner::start(runner_config_with(
            &db.url,
            &router.url,
            &opts.scheduler,
            &opts.runner_tables,
        ))
        .await
        .unwrap();
        Some(Stack {
            sims,
            router,
            runner,
            db,
            key: SigningKey::from_bytes(&[5u8; 32]),
            http: reqwest::Client::new(),
        })
    }

    /// Another runner instance on the same database and router.
    pub async fn second_runner(&self, scheduler: &str) -> RunnerHandle {
        beacon_runner::start(runner_config(&self.db.url, &self.router.url, scheduler))
            .await
            .unwrap()
    }

    /// A direct connection to the test's database, for what no API does (installing
    /// a trigger that makes the database refuse a write).
    pub async fn sql(&self, statements: &[&str]) {
        use sqlx::Connection;
        if self.db.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        } else {
            let mut c = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    }

    /// Rows stored (jobs, executions, nonces): "nothing persisted" checks.
    pub async fn runner_totals(&self) -> beacon_store::Totals {
        let store = beacon_store::connect(&self.db.url).await.unwrap();
        store.totals().await.unwrap()
    }

    pub fn sim(&self, region: &str) -> &SimHandle {
        &self.sims.iter().find(|(r, _)| *r == region).unwrap().1
    }

    /// Calls a simulator received, probes left out.
    pub fn live_calls(&self, region: &str) -> Vec<CallRecord> {
        let probe = sha256_hex(PROBE_PROMPT);
        self.sim(region)
            .stats()
            .calls
            .into_iter()
            .filter(|c| c.prompt_sha256 != probe)
            .collect()
    }

    pub fn all_live_calls(&self) -> Vec<CallRecord> {
        self.sims
            .iter()
            .flat_map(|(r, _)| self.live_calls(r))
            .collect()
    }

    /// A signed spec (fresh nonce and timestamp).
    pub fn spec(
        &self,
        id: &str,
        questions: &[&str],
        models: &[&str],
        regions: &[&str],
        extra: Value,
    ) -> Value {
        let mut spec = json!({
            "id": id, "version": "v1",
            "benchmark": {"name": "bias-detection", "version": "v1"},
            "questions": questions, "models": models,
            "constraints": {"regions": regions},
            "metadata": {"created_by": "test", "nonce": beacon_store::testing::random_hex(), "timestamp": chrono::Utc::now().to_rfc3339()},
            "runs": 1,
        });
        merge(&mut spec, extra);
        beacon_core::signing::sign(&spec, &self.key).unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.runner.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.runner.url))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn submit(&self, spec: &Value) -> (u16, Value) {
        self.post("/api/v1/jobs", spec).await
    }

    /// The job with every execution.
    pub async fn job(&self, id: &str) -> Value {
        let (status, body) = self
            .get(&format!(
                "/api/v1/jobs/{id}?include=executions&exec_limit=10000"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        eventually(limit, &format!("job {id} terminal"), || async {
            let job = self.job(id).await;
            let s = job["status"].as_str().unwrap_or("").to_string();
            ["completed", "failed", "cancelled"]
                .contains(&s.as_str())
                .then_some(job)
        })
        .await
    }

    pub async fn shutdown(self) {
        self.runner.shutdown().await;
        self.router.shutdown().await;
        for (_, s) in self.sims {
            s.shutdown().await;
        }
        if let Some(pg) = self.db.pg {
            pg.cleanup().await;
        }
    }
}

/// The inference token of the test routers; every test runner sends it (ROUTER_TOKEN).
pub const ROUTER_TOKEN: &str = "beacon-runner-test-router-token-42";

/// The environment of the test routers: their inference token.
pub fn router_env(k: &str) -> Option<String> {
    (k == "ROUTER_INFERENCE_TOKEN").then(|| ROUTER_TOKEN.to_string())
}

/// A router configuration with one Modal provider per simulator, listening on
/// `listen`; `unhealthy_after` defaults to 3. Inference needs [`ROUTER_TOKEN`].
pub fn router_toml(
    sims: &[(&'static str, SimHandle)],
    listen: &str,
    unhealthy_after: Option<u32>,
) -> String {
    let mut providers = String::new();
    for (region, sim) in sims {
        providers.push_str(&format!(
            "[[providers]]\nname = \"sim-{region}\"\nkind = \"modal\"\nregion = \"{region}\"\nurl = \"{}/\"\nmodels = [\"llama3.2-1b\", \"mistral-7b\", \"qwen2.5-1.5b\"]\nmax_concurrency = 64\nqueue_timeout = \"10s\"\nrequest_timeout = \"30s\"\n",
            sim.url()
        ));
    }
    format!(
        "listen = \"{listen}\"\n[auth]\ninference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n[health]\nprobe_interval = \"30s\"\nunhealthy_after = {}\neject_base = \"300ms\"\neject_max = \"1s\"\n{providers}",
        unhealthy_after.unwrap_or(3)
    )
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            match b.get_mut(&k) {
                Some(existing @ Value::Object(_)) if v.is_object() => merge(existing, v),
                _ => {
                    b.insert(k, v);
                }
            }
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn executions(job: &Value) -> Vec<Value> {
    job["executions"].as_array().cloned().unwrap_or_default()
}
