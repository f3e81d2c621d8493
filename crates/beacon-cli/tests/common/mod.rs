//! A one-region system for the CLI's tests: an eu-west simulator, a router with it as
//! its only provider, and a runner on a SQLite file, all in process on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use beacon_core::Region;
use beacon_router::RouterHandle;
use beacon_runner::RunnerHandle;
use beacon_sim::{SimConfig, SimHandle, Simulator};
use beacon_store::testing::TempPath;

pub struct EuStack {
    pub tmp: TempPath,
    pub db_url: String,
    pub sim: SimHandle,
    pub router: RouterHandle,
    pub runner: RunnerHandle,
}

/// The test router's inference token (the runner sends it as ROUTER_TOKEN).
pub const ROUTER_TOKEN: &str = "beacon-cli-test-router-token-0123";

impl EuStack {
    /// `runner_toml` is the runner's configuration file (its `listen` and tables).
    pub async fn start(runner_toml: &str) -> EuStack {
        let tmp = TempPath::new();
        let sim = Simulator::start(SimConfig::for_region(Region::eu_west()))
            .await
            .unwrap();
        let router_toml = format!(
            "listen = \"127.0.0.1:0\"\n[auth]\ninference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n[[providers]]\nname = \"sim-eu\"\nkind = \"modal\"\nregion = \"eu-west\"\nurl = \"{}/\"\nmodels = [\"llama3.2-1b\", \"mistral-7b\"]\n",
            sim.url()
        );
        let router = beacon_router::start(
            beacon_router::Config::from_toml(&router_toml, &|k| {
                (k == "ROUTER_INFERENCE_TOKEN").then(|| ROUTER_TOKEN.to_string())
            })
            .unwrap(),
        )
        .await
        .unwrap();
        let db_url = tmp.sqlite_url();
        let (db, r) = (db_url.clone(), router.url.clone());
        let env = move |k: &str| match k {
            "DATABASE_URL" => Some(db.clone()),
            "ROUTER_URL" => Some(r.clone()),
            "ROUTER_TOKEN" => Some(ROUTER_TOKEN.to_string()),
            _ => None,
        };
        let runner =
            beacon_runner::start(beacon_runner::Config::from_toml(runner_toml, &env).unwrap())
                .await
                .unwrap();
        EuStack {
            tmp,
            db_url,
            sim,
            router,
            runner,
        }
    }
}
