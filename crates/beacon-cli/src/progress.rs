//! Live progress of a job: fed by the runner's event stream (polling if the stream
//! drops), drawn as one bar with per-region counts of done, failed and running.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Client, ClientError};

/// Per region: (done, failed, running, cancelled, pending).
#[derive(Default, Clone, Copy)]
struct Counts {
    done: u32,
    failed: u32,
    running: u32,
    cancelled: u32,
}

pub struct Progress {
    statuses: BTreeMap<String, (String, String)>,
    total: usize,
    tty: bool,
    last_line: Instant,
    enabled: bool,
}

const TERMINAL_JOB: [&str; 3] = ["completed", "failed", "cancelled"];

impl Progress {
    fn new(job: &Value, enabled: bool) -> Progress {
        let mut p = Progress {
            statuses: BTreeMap::new(),
            total: job["total_executions"].as_u64().unwrap_or(0) as usize,
            tty: std::io::stderr().is_terminal(),
            last_line: Instant::now() - Duration::from_secs(60),
            enabled,
        };
        for e in job["executions"].as_array().into_iter().flatten() {
            p.update(e);
        }
        p
    }

    fn update(&mut self, e: &Value) {
        if let (Some(id), Some(region), Some(status)) =
            (e["id"].as_str(), e["region"].as_str(), e["status"].as_str())
        {
            self.statuses
                .insert(id.to_string(), (region.to_string(), status.to_string()));
        }
    }

    fn per_region(&self) -> BTreeMap<&str, Counts> {
        let mut m: BTreeMap<&str, Counts> = BTreeMap::new();
        for (region, status) in self.statuses.values() {
            let c = m.entry(region.as_str()).or_default();
            match status.as_str() {
                "completed" => c.done += 1,
                "failed" | "timeout" => c.failed += 1,
                "running" | "retrying" => c.running += 1,
                "cancelled" => c.cancelled += 1,
                _ => {}
            }
        }
        m
    }

    fn line(&self) -> String {
        let regions = self.per_region();
        let finished: u32 = regions
            .values()
            .map(|c| c.done + c.failed + c.cancelled)
            .sum();
        let total = self.total.max(self.statuses.len()).max(1);
        let width = 24;
        let filled = (finished as usize * width) / total;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(width - filled.min(width))
        );
        let parts: Vec<String> = regions
            .iter()
            .map(|(r, c)| {
                let mut s = format!(
                    "{r} {} done, {} failed, {} running",
                    c.done, c.failed, c.running
                );
                if c.cancelled > 0 {
                    s.push_str(&format!(", {} cancelled", c.cancelled));
                }
                s
            })
            .collect();
        format!("[{bar}] {finished}/{total}  {}", parts.join(" | "))
    }

    fn draw(&mut self, force: bool) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", self.line());
            let _ = err.flush();
        } else if force || self.last_line.elapsed() >= Duration::from_secs(2) {
            let _ = writeln!(err, "{}", self.line());
            self.last_line = Instant::now();
        }
    }

    fn finish(&mut self) {
        if self.enabled {
            self.draw(true);
            if self.tty {
                let _ = writeln!(std::io::stderr());
            }
        }
    }
}

/// Follows a job until it is terminal and returns it with its executions.
pub async fn watch(client: &Client, job_id: &str, show: bool) -> Result<Value, ClientError> {
    let path = format!("/api/v1/jobs/{job_id}?include=executions&exec_limit=10000");
    let job = client.get(&path).await?;
    let mut progress = Progress::new(&job, show);
    progress.draw(true);
    if !is_terminal(&job) {
        if let Ok(mut events) = client
            .events(&format!("/api/v1/jobs/{job_id}/events"))
            .await
        {
            while let Some(ev) = events.next().await {
                match ev.name.as_str() {
                    "execution_update" => progress.update(&ev.data),
                    "job_update" if is_terminal(&ev.data) => break,
                    _ => {}
                }
                progress.draw(false);
            }
        }
        // The stream ended (or never opened): poll until the job is terminal.
        loop {
            let job = client.get(&path).await?;
            for e in job["executions"].as_array().into_iter().flatten() {
                progress.update(e);
            }
            progress.draw(false);
            if is_terminal(&job) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let job = client.get(&path).await?;
    for e in job["executions"].as_array().into_iter().flatten() {
        progress.update(e);
    }
    progress.finish();
    Ok(job)
}

pub fn is_terminal(job: &Value) -> bool {
    job["status"]
        .as_str()
        .is_some_and(|s| TERMINAL_JOB.contains(&s))
}
