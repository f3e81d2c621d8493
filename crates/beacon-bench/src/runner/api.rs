//! The benchmark's view of the runner and the simulators over HTTP: readiness, job
//! submission, job state, cancel; the simulators' counters and call logs.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One control request (status poll, stats) that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Call-log records fetched per request.
const LOG_PAGE: usize = 5_000;

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

    fn from_json(v: &Value) -> JobState {
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
}
