//! The services' HTTP APIs as benchmarks and drills use them: the runner's readiness,
//! submission, job state with its counts, waiting for a state, cancel, executions
//! listing and health (with the router breaker's state); the router's provider states.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beacon_core::wire::{ProviderEntry, ProviderState, ProvidersResponse};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One control request (status poll, stats) that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")
}

/// The runner's answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job_id: String,
    /// `total_executions` of the 202 answer (rows inserted).
    pub total: u64,
    /// From sending the request to the 202 answer.
    pub latency: Duration,
    /// When the 202 answer arrived, monotonic and wall-clock.
    pub at: Instant,
    pub at_wall: DateTime<Utc>,
}

/// `progress` of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub retrying: u64,
    pub completed: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
}

/// The parts of `GET /api/v1/jobs/{id}` the benchmark reads.
#[derive(Debug, Clone, Default)]
pub struct JobState {
    pub status: String,
    pub progress: Progress,
    pub finished_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
}

impl JobState {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    pub fn from_json(v: &Value) -> JobState {
        let p = &v["progress"];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        JobState {
            status: v["status"].as_str().unwrap_or("").to_string(),
            progress: Progress {
                total: n("total"),
                pending: n("pending"),
                running: n("running"),
                retrying: n("retrying"),
                completed: n("completed"),
                failed: n("failed"),
                timeout: n("timeout"),
                cancelled: n("cancelled"),
            },
            finished_at: time(&v["finished_at"]),
            failure_reason: v["failure_reason"].as_str().map(str::to_string),
        }
    }
}

/// The parts of the runner's `GET /api/v1/health` a drill reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `healthy`, `degraded` (the router is not) or `unhealthy` (the database is not).
    pub status: String,
    /// The router service's status: `healthy`, `degraded` (breaker open) or `down`.
    pub router: String,
    /// The runner's breaker in front of the router: `closed`, `open` or `half_open`.
    pub breaker: String,
    /// The database service's status: `healthy`, `failing` (writes fail) or `down`.
    pub database: String,
    /// The whole answer, for figures and failure messages.
    pub json: Value,
}

impl Health {
    pub fn from_json(v: &Value) -> anyhow::Result<Health> {
        let service = |name: &str| {
            v["services"]
                .as_array()
                .and_then(|list| list.iter().find(|s| s["name"] == name))
                .with_context(|| format!("no {name} service in the health answer: {v}"))
        };
        let (router, database) = (service("router")?, service("database")?);
        let text = |x: &Value, what: &str| -> anyhow::Result<String> {
            x.as_str()
                .map(str::to_string)
                .with_context(|| format!("no {what} in the health answer: {v}"))
        };
        Ok(Health {
            status: text(&v["status"], "status")?,
            router: text(&router["status"], "router status")?,
            breaker: text(&router["breaker"], "breaker")?,
            database: text(&database["status"], "database status")?,
            json: v.clone(),
        })
    }
}

pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The runner's API.
#[derive(Debug, Clone)]
pub struct RunnerApi {
    http: reqwest::Client,
    base: String,
}

impl RunnerApi {
    pub fn new(http: reqwest::Client, base: &str) -> RunnerApi {
        RunnerApi {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Polls `GET /readyz` (database and router reachable) every 20 ms until 200.
    pub async fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < limit {
            match self.http.get(format!("{}/readyz", self.base)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the runner was not ready within {limit:?}: {last}")
    }

    /// `POST /api/v1/jobs`; anything but 202 is an error quoting the answer.
    pub async fn submit(&self, body: Vec<u8>) -> anyhow::Result<Submitted> {
        let sent = Instant::now();
        let answer = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("submitting the job")?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .context("reading the submission answer")?;
        let (at, at_wall) = (Instant::now(), Utc::now());
        if status != reqwest::StatusCode::ACCEPTED {
            bail!("the runner refused the job: {status} {text}");
        }
        let v: Value = serde_json::from_str(&text).context("the 202 answer is not JSON")?;
        let job_id = v["id"]
            .as_str()
            .context("the 202 answer has no id")?
            .to_string();
        Ok(Submitted {
            job_id,
            total: v["total_executions"].as_u64().unwrap_or(0),
            latency: at - sent,
            at,
            at_wall,
        })
    }

    pub async fn job(&self, id: &str) -> anyhow::Result<JobState> {
        let r = self
            .http
            .get(format!("{}/api/v1/jobs/{id}", self.base))
            .send()
            .await
            .context("reading the job")?;
        let status = r.status();
        let v: Value = r.json().await.context("the job answer is not JSON")?;
        if !status.is_success() {
            bail!("GET /api/v1/jobs/{id}: {status} {v}");
        }
        Ok(JobState::from_json(&v))
    }

    /// `POST /api/v1/jobs/{id}/cancel`: the time to its answer (which waits until the
    /// job's calls in flight have closed) and the answer.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<(Duration, Value)> {
        let sent = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/jobs/{id}/cancel", self.base))
            // State-changing routes take JSON only (docs/operations.md, security model).
            .json(&serde_json::json!({}))
            .send()
            .await
            .context("cancelling the job")?;
        let status = r.status();
        let v: Value = r.json().await.context("the cancel answer is not JSON")?;
        if !status.is_success() {
            bail!("cancel: {status} {v}");
        }
        Ok((sent.elapsed(), v))
    }
}

impl RunnerApi {
    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/health`: the runner's own view of its database and router.
    pub async fn health(&self) -> anyhow::Result<Health> {
        let r = self
            .http
            .get(format!("{}/api/v1/health", self.base))
            .send()
            .await
            .context("reading the runner's health")?;
        let status = r.status();
        let v: Value = r.json().await.context("the health answer is not JSON")?;
        if !status.is_success() {
            bail!("GET /api/v1/health: {status} {v}");
        }
        Health::from_json(&v)
    }

    /// Submits a spec given as JSON (see [`RunnerApi::submit`]).
    pub async fn submit_json(&self, spec: &Value) -> anyhow::Result<Submitted> {
        self.submit(serde_json::to_vec(spec)?).await
    }

    /// Polls the job every 50 ms until `done` holds for its state, failing after
    /// `limit` with the last state seen.
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        done: impl Fn(&JobState) -> bool,
    ) -> anyhow::Result<JobState> {
        let start = Instant::now();
        loop {
            let state = self.job(id).await?;
            if done(&state) {
                return Ok(state);
            }
            if start.elapsed() > limit {
                bail!(
                    "job {id}: no {what} within {limit:?}; last seen {} {:?}",
                    state.status,
                    state.progress
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the job is completed, failed or cancelled.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> anyhow::Result<JobState> {
        self.wait_for(id, limit, "terminal status", JobState::is_terminal)
            .await
    }

    /// Every execution of a job (`GET /api/v1/jobs/{id}/executions`, up to 10,000) as
    /// the runner shows them.
    pub async fn executions(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .http
            .get(format!(
                "{}/api/v1/jobs/{id}/executions?limit=10000",
                self.base
            ))
            .send()
            .await
            .context("listing executions")?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .context("the executions answer is not JSON")?;
        if !status.is_success() {
            bail!("GET /api/v1/jobs/{id}/executions: {status} {v}");
        }
        let list = v["executions"].as_array().cloned().unwrap_or_default();
        if v["total"].as_u64() != Some(list.len() as u64) {
            bail!(
                "GET /api/v1/jobs/{id}/executions: {} listed of total {}",
                list.len(),
                v["total"]
            );
        }
        Ok(list)
    }
}

/// The router's API.
#[derive(Debug, Clone)]
pub struct RouterApi {
    http: reqwest::Client,
    base: String,
}

impl RouterApi {
    pub fn new(http: reqwest::Client, base: &str) -> RouterApi {
        RouterApi {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `GET /providers`: every provider with its health state.
    pub async fn providers(&self) -> anyhow::Result<Vec<ProviderEntry>> {
        let r = self
            .http
            .get(format!("{}/providers", self.base))
            .send()
            .await
            .context("reading the router's providers")?;
        let status = r.status();
        if !status.is_success() {
            bail!("GET /providers: {status}");
        }
        let v: ProvidersResponse = r.json().await.context("the providers answer")?;
        Ok(v.providers)
    }

    /// The state of the (first) provider of `region`.
    pub async fn region_state(&self, region: &str) -> anyhow::Result<ProviderState> {
        self.providers()
            .await?
            .into_iter()
            .find(|p| p.region == region)
            .map(|p| p.state)
            .with_context(|| format!("the router has no provider in {region}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_job_answer() {
        let v = json!({"id": "j", "status": "completed",
            "created_at": "2026-11-24T10:00:00.000Z", "finished_at": "2026-11-24T10:00:06.250Z",
            "progress": {"total": 900, "pending": 0, "running": 0, "retrying": 0,
                         "completed": 899, "failed": 1, "timeout": 0, "cancelled": 0}});
        let s = JobState::from_json(&v);
        assert!(s.is_terminal());
        assert_eq!(
            (s.progress.total, s.progress.completed, s.progress.failed),
            (900, 899, 1)
        );
        let Some(f) = s.finished_at else {
            panic!("finished_at not read");
        };
        assert_eq!(f.timestamp_millis() % 1000, 250);
        assert!(!JobState::from_json(&json!({"status": "running"})).is_terminal());
    }

    #[test]
    fn reads_a_health_answer() {
        let v = json!({"status": "degraded", "services": [
            {"name": "database", "status": "healthy"},
            {"name": "router", "status": "down", "breaker": "open", "error": "refused"},
            {"name": "scheduler", "status": "healthy"}]});
        let h = Health::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (h.status.as_str(), h.router.as_str(), h.breaker.as_str()),
            ("degraded", "down", "open")
        );
        assert!(Health::from_json(&json!({"status": "healthy", "services": []})).is_err());
    }
}
