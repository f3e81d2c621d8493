//! LiteLLM's proxy as the peer of the router-overhead benchmark: a child process (its
//! own process group, since its server forks workers) configured to front the
//! simulator's OpenAI route with one model, ready when `/health/liveliness` answers,
//! killed with its workers when dropped. Its memory and CPU are those of the group.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::load::{MODEL, PEER_KEY};
use crate::procs::log_tail;

/// LiteLLM imports for 15-40 s before it serves; its workers longer under load.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(250);

/// A running LiteLLM proxy and its workers.
pub struct LiteLlm {
    child: Child,
    url: String,
    log: PathBuf,
}

/// The proxy's config: one model, the simulator's OpenAI route behind it.
fn config(sim_url: &str) -> String {
    format!(
        "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      \
         api_base: {}/v1\n      api_key: sk-none\n",
        sim_url.trim_end_matches('/')
    )
}

/// A port free right now (LiteLLM takes a port number, not port 0).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl LiteLlm {
    /// Starts `program` (the venv's `litellm`) with `workers` worker processes in
    /// front of `sim_url`; waits until it answers.
    pub async fn start(
        program: &Path,
        sim_url: &str,
        workers: u32,
        scratch: &Path,
    ) -> anyhow::Result<LiteLlm> {
        if !program.is_file() {
            bail!(
                "litellm: no executable at {} (scripts/bench/router-overhead --peer litellm \
                 installs it)",
                program.display()
            );
        }
        let cfg = scratch.join("litellm.yaml");
        std::fs::write(&cfg, config(sim_url))?;
        let log = scratch.join("litellm.log");
        let port = free_port()?;
        let mut command = Command::new(program);
        command
            .args(["--config", &cfg.display().to_string()])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", &workers.to_string()])
            // Its workers import for longer than uvicorn's default health-check wait,
            // which otherwise kills them in a loop.
            .args(["--timeout_worker_healthcheck", "120"])
            .env("LITELLM_MASTER_KEY", PEER_KEY)
            // Without this it downloads its model cost map at start.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&log)?))
            .stderr(Stdio::from(File::options().append(true).open(&log)?))
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let proxy = LiteLlm {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        proxy.wait_ready().await?;
        Ok(proxy)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let probe = format!("{}/health/liveliness", self.url);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(r) = http.get(&probe).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!(
            "litellm did not answer {probe} within {READY_TIMEOUT:?}{}",
            log_tail(&self.log)
        )
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process group (the proxy and its workers).
    pub fn group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        // The group this benchmark created, by its id: the proxy and its workers.
        if let Ok(id) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// RSS and CPU time of every process in group `pgid` (from `/proc`).
pub fn group_usage(pgid: u32) -> (u64, f64) {
    let mut rss = 0;
    let mut cpu = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0.0);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 5 (pgrp) counted after the command name's closing parenthesis.
        let group = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) {
            rss += crate::procs::rss_bytes(pid).unwrap_or(0);
            cpu += crate::procs::cpu_ms(pid).unwrap_or(0.0);
        }
    }
    (rss, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_fronts_the_simulators_openai_route() {
        let c = config("http://127.0.0.1:4000/");
        assert!(c.contains("api_base: http://127.0.0.1:4000/v1"), "{c}");
        assert!(c.contains(&format!("model: openai/{MODEL}")), "{c}");
    }

    #[test]
    fn this_process_group_is_measured() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let pgid: u32 = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        let (rss, _) = group_usage(pgid);
        assert!(rss > 0);
    }
}
