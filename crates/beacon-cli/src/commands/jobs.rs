//! `beacon submit`, `status`, `watch` and `cancel`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::keys::{key_path, read_spec};
use crate::client::Client;
use crate::exit;
use crate::progress;
use crate::summary;

pub async fn submit(
    file: &Path,
    runner: &str,
    key: Option<PathBuf>,
    no_sign: bool,
    wait: bool,
    as_json: bool,
) -> anyhow::Result<u8> {
    let mut spec = read_spec(file)?;
    if !no_sign {
        spec = crate::keys::sign_spec(&spec, &crate::keys::read(&key_path(key))?)?;
    }
    let client = Client::new(runner);
    let (status, body) = match client.post("/api/v1/jobs", &spec).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("beacon: submit refused: {e}");
            return Ok(exit::for_client_error(&e));
        }
    };
    let id = body["id"].as_str().unwrap_or("").to_string();
    if !wait {
        if as_json {
            println!("{body}");
        } else {
            let replay = if status == 200 {
                " (already submitted: idempotent replay)"
            } else {
                ""
            };
            println!(
                "job {id} accepted: {} executions{replay}",
                body["total_executions"]
            );
        }
        return Ok(exit::OK);
    }
    if !as_json {
        eprintln!("job {id} accepted: {} executions", body["total_executions"]);
    }
    finish(&client, &id, as_json).await
}

/// Watches a job to the end and reports it; the exit code follows its status.
pub async fn finish(client: &Client, id: &str, as_json: bool) -> anyhow::Result<u8> {
    match progress::watch(client, id, !as_json).await {
        Ok(job) => {
            if as_json {
                println!("{}", brief(&job));
            } else {
                println!("{}", summary::job_summary(&job));
            }
            Ok(exit::for_job_status(job["status"].as_str().unwrap_or("")))
        }
        Err(e) => {
            eprintln!("beacon: {e}");
            Ok(exit::for_client_error(&e))
        }
    }
}

fn brief(job: &Value) -> Value {
    json!({"id": job["id"], "status": job["status"], "failure_reason": job["failure_reason"], "progress": job["progress"]})
}

pub async fn status(id: &str, runner: &str, as_json: bool) -> anyhow::Result<u8> {
    let client = Client::new(runner);
    match client
        .get(&format!(
            "/api/v1/jobs/{id}?include=executions&exec_limit=10000"
        ))
        .await
    {
        Ok(job) => {
            if as_json {
                println!("{}", brief(&job));
            } else {
                println!("{}", summary::job_summary(&job));
            }
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("beacon: {e}");
            Ok(exit::for_client_error(&e))
        }
    }
}

pub async fn watch(id: &str, runner: &str, as_json: bool) -> anyhow::Result<u8> {
    finish(&Client::new(runner), id, as_json).await
}

pub async fn cancel(id: &str, runner: &str, as_json: bool) -> anyhow::Result<u8> {
    let client = Client::new(runner);
    match client
        .post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))
        .await
    {
        Ok((_, body)) => {
            if as_json {
                println!("{body}");
            } else if let Some(m) = body["message"].as_str() {
                println!("job {id}: {m}");
            } else {
                println!(
                    "job {id}: {} → {}, {} executions cancelled",
                    body["previous_status"].as_str().unwrap_or("?"),
                    body["new_status"].as_str().unwrap_or("?"),
                    body["executions_cancelled"]
                );
            }
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("beacon: {e}");
            Ok(exit::for_client_error(&e))
        }
    }
}
