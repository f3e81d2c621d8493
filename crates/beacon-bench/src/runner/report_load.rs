//! The report of a 100,000-execution job: the big job is submitted and cancelled at
//! once, then every execution is made a completed answer directly in the database
//! (answers of about 60 words from a 5,000-word vocabulary); the runner then serves
//! six concurrent uncached `/report` requests, `/report` again, `report.html` and the
//! JSON lines export, while its RSS is sampled. Target: RSS ≤ 250 MiB throughout.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection};

use super::big_job::TARGET_RSS_MIB;
use super::db::Backend;
use super::measure::RSS_EVERY;
use super::scenarios::Ctx;
use super::spec::{big_job_models, big_job_shape, job_id, signed_body};
use super::stack::{Stack, StackSpec};
use crate::procs::{RssSampler, rss_bytes};
use crate::report::MIB;

#[derive(Debug, Clone)]
pub struct Fetch {
    pub what: String,
    pub status: u16,
    pub took: Duration,
    pub bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ReportLoad {
    pub backend: Backend,
    pub executions: u64,
    pub fetches: Vec<Fetch>,
    /// Report computations the runner counted for the six concurrent requests.
    pub computations: u64,
    pub rss_idle: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
}

impl ReportLoad {
    pub fn pass(&self) -> bool {
        self.rss_peak > 0
            && self.rss_peak as f64 / MIB <= TARGET_RSS_MIB
            && self.fetches.iter().all(|f| f.status == 200)
            && self.computations == 1
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "report of a {}-execution job on {}: RSS idle {:.0} MiB, peak {:.0} MiB, after {:.0} MiB (target ≤ {TARGET_RSS_MIB:.0} MiB), computations for 6 concurrent requests: {} → {}\n",
            self.executions,
            self.backend,
            self.rss_idle as f64 / MIB,
            self.rss_peak as f64 / MIB,
            self.rss_after as f64 / MIB,
            self.computations,
            if self.pass() { "PASS" } else { "FAIL" }
        );
        for f in &self.fetches {
            out.push_str(&format!(
                "  {:<28} {:>4} {:>8.2} s {:>10.1} KiB\n",
                f.what,
                f.status,
                f.took.as_secs_f64(),
                f.bytes as f64 / 1024.0
            ));
        }
        out
    }
}

async fn fetch(http: &reqwest::Client, url: &str, what: &str) -> anyhow::Result<Fetch> {
    let t = Instant::now();
    let resp = http.get(url).send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?.len();
    Ok(Fetch {
        what: what.to_string(),
        status,
        took: t.elapsed(),
        bytes,
    })
}

/// Every execution of `job` completed with a substantive answer, the job completed.
async fn seed(backend: Backend, url: &str, job: &str) -> anyhow::Result<()> {
    // Sixty words picked from 5,000 by the execution's seq: answers differ, and the
    // vocabulary is about what real answers to hundreds of questions have.
    let words = "(SELECT string_agg('w' || ((seq * 7919 + g * 104729) % 5000), ' ') FROM generate_series(1, 60) AS g)";
    let (response, now) = match backend {
        Backend::Postgres => (format!("convert_to({words}, 'UTF8')"), "now()"),
        Backend::Sqlite => (
            "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 60) \
             SELECT group_concat('w' || ((seq * 7919 + n * 104729) % 5000), ' ') FROM g)"
                .to_string(),
            "CAST(strftime('%s','now') AS INTEGER) * 1000",
        ),
    };
    let statements = [
        format!(
            "UPDATE executions SET status = 'completed', classification = 'substantive', \
             provider_id = 'sim-' || region, response = {response}, latency_ms = 1, \
             started_at = {now}, completed_at = {now}, failure = NULL, error_code = NULL \
             WHERE job_id = '{job}'"
        ),
        format!("UPDATE jobs SET status = 'completed' WHERE id = '{job}'"),
    ];
    match backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            for s in &statements {
                sqlx::raw_sql(AssertSqlSafe(s.clone()))
                    .execute(&mut c)
                    .await?;
            }
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await?;
            for s in &statements {
                sqlx::raw_sql(AssertSqlSafe(s.clone()))
                    .execute(&mut c)
                    .await?;
            }
        }
    }
    Ok(())
}

fn computations(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("beacon_runner_report_computations_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub async fn measure(ctx: &Ctx, backend: Backend) -> anyhow::Result<ReportLoad> {
    let models = big_job_models();
    let mut stack = Stack::start(&StackSpec {
        backend,
        latency: Duration::ZERO,
        models: &models,
        concurrency: 1,
        postgres_url: &ctx.postgres_url,
        bin_dir: &ctx.bin_dir,
    })
    .await?;
    let shape = big_job_shape();
    let id = job_id(&format!("report-{backend}"));
    let body = signed_body(&id, &shape, &ctx.key)?;
    let submitted = stack.runner_api.submit(body).await?;
    stack.runner_api.cancel(&submitted.job_id).await?;
    seed(backend, stack.db.url(), &submitted.job_id).await?;

    let http = reqwest::Client::new();
    let base = format!(
        "{}/api/v1/jobs/{}",
        stack.runner_api.url(),
        submitted.job_id
    );
    let metrics_url = format!("{}/metrics", stack.runner_api.url());
    let pid = stack.runner.pid();
    let rss_idle = rss_bytes(pid).unwrap_or(0);
    let sampler = RssSampler::start(pid, RSS_EVERY);
    let before = computations(&http.get(&metrics_url).send().await?.text().await?);
    let report_url = format!("{base}/report");
    let six = (0..6).map(|i| {
        let (http, url) = (http.clone(), report_url.clone());
        async move { fetch(&http, &url, &format!("/report (concurrent {})", i + 1)).await }
    });
    let mut fetches: Vec<Fetch> = futures_join(six).await?;
    let after = computations(&http.get(&metrics_url).send().await?.text().await?);
    fetches.push(fetch(&http, &report_url, "/report (cached)").await?);
    fetches.push(fetch(&http, &format!("{base}/report.html"), "report.html").await?);
    fetches.push(
        fetch(
            &http,
            &format!("{base}/report.html?page=250"),
            "report.html?page=250",
        )
        .await?,
    );
    fetches.push(
        fetch(
            &http,
            &format!("{base}/report/answers.jsonl"),
            "report/answers.jsonl",
        )
        .await?,
    );
    let rss_peak = sampler.stop(pid).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_bytes(pid).unwrap_or(0);
    stack.check_alive()?;
    if ctx.keep {
        stack.keep();
    }
    Ok(ReportLoad {
        backend,
        executions: shape.executions(),
        fetches,
        computations: after.saturating_sub(before),
        rss_idle,
        rss_peak,
        rss_after,
    })
}

async fn futures_join<F>(futures: impl Iterator<Item = F>) -> anyhow::Result<Vec<Fetch>>
where
    F: std::future::Future<Output = anyhow::Result<Fetch>> + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}
