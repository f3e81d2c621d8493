//! `beacon report JOB`: the job's summary and, per question and model, what each
//! region did; `--html FILE` saves the runner's report page.

use std::path::PathBuf;

use anyhow::Context;

use crate::client::Client;
use crate::exit;
use crate::summary;

pub async fn report(
    id: &str,
    runner: &str,
    html: Option<PathBuf>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let client = Client::new(runner);
    let job = match client
        .get(&format!(
            "/api/v1/jobs/{id}?include=executions&exec_limit=10000"
        ))
        .await
    {
        Ok(j) => j,
        Err(e) => {
            eprintln!("beacon: {e}");
            return Ok(exit::for_client_error(&e));
        }
    };
    let analysis = client.get(&format!("/api/v1/jobs/{id}/report")).await.ok();
    if as_json {
        println!("{}", serde_json::json!({"job": job, "report": analysis}));
    } else {
        println!("{}", summary::job_summary(&job));
        match &analysis {
            Some(r) => println!("{}", summary::analysis_table(r)),
            None => println!("{}", summary::answers_table(&job)),
        }
    }
    if let Some(path) = html {
        let page = client
            .get_text(&format!("/api/v1/jobs/{id}/report.html"))
            .await
            .map_err(|e| anyhow::anyhow!("fetching the HTML report: {e}"))?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(exit::OK)
}
