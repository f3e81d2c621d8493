//! The benchmark's view of the runner and the simulators over HTTP: the runner's API
//! (readiness, submission, job state, cancel) is shared with the drills and lives in
//! `beacon_drills::api`; here are the simulators' counters and call logs.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use beacon_drills::api::{JobState, RunnerApi, Submitted, http_client, time};

/// Call-log records fetched per request.
const LOG_PAGE: usize = 5_000;

/// The counters of `GET /__sim/stats?limit=0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounters {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub in_flight: u64,
    pub queued: u64,
}

/// One call of a simulator's log.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCall {
    pub id: u64,
    pub region: String,
    pub model: String,
    pub prompt_sha256: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: String,
}

/// One simulator's control routes.
#[derive(Debug, Clone)]
pub struct SimApi {
    http: reqwest::Client,
    base: String,
    region: String,
}

impl SimApi {
    pub fn new(http: reqwest::Client, base: &str, region: &str) -> SimApi {
        SimApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            region: region.to_string(),
        }
    }

    async fn stats(&self, since_id: u64, limit: usize) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!(
                "{}/__sim/stats?since_id={since_id}&limit={limit}",
                self.base
            ))
            .send()
            .await
            .context("reading simulator stats")?;
        Ok(r.error_for_status()?.json().await?)
    }

    pub async fn counters(&self) -> anyhow::Result<SimCounters> {
        let v = self.stats(0, 0).await?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(SimCounters {
            started: n("started"),
            completed: n("completed"),
            failed: n("failed"),
            in_flight: n("in_flight"),
            queued: n("queued"),
        })
    }

    /// Every logged call with an id above `since_id`, page by page.
    pub async fn calls_since(&self, since_id: u64) -> anyhow::Result<Vec<SimCall>> {
        let mut out: Vec<SimCall> = Vec::new();
        let mut after = since_id;
        loop {
            let v = self.stats(after, LOG_PAGE).await?;
            let page = v["calls"].as_array().cloned().unwrap_or_default();
            for c in &page {
                let (Some(id), Some(started_at)) = (c["id"].as_u64(), time(&c["started_at"]))
                else {
                    bail!("a simulator call record without id or start: {c}");
                };
                out.push(SimCall {
                    id,
                    region: self.region.clone(),
                    model: c["model"].as_str().unwrap_or("").to_string(),
                    prompt_sha256: c["prompt_sha256"].as_str().unwrap_or("").to_string(),
                    started_at,
                    ended_at: time(&c["ended_at"]),
                    outcome: c["outcome"].as_str().unwrap_or("").to_string(),
                });
                after = after.max(id);
            }
            if page.len() < LOG_PAGE {
                return Ok(out);
            }
        }
    }
}
