//! `beacon verify JOB`: fetches every execution and its receipt and checks, offline,
//! that each receipt is signed by the runner's key, describes that execution, and
//! hashes exactly the answer the runner now serves. Any stored answer changed after
//! signing is named.

use beacon_core::receipt::Receipt;
use serde_json::{Value, json};

use crate::client::Client;
use crate::exit;

/// One problem with one execution.
struct Problem {
    execution: String,
    what: String,
}

pub async fn verify(
    id: &str,
    runner: &str,
    public_key: Option<String>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let client = Client::new(runner);
    let expected_key = match public_key {
        Some(k) => k,
        None => match client.get("/api/v1/health").await {
            Ok(h) => match h["receipt_public_key"].as_str() {
                Some(k) => k.to_string(),
                None => {
                    eprintln!(
                        "beacon: the runner publishes no receipt_public_key; pass --public-key"
                    );
                    return Ok(exit::USAGE);
                }
            },
            Err(e) => {
                eprintln!("beacon: {e}");
                return Ok(exit::for_client_error(&e));
            }
        },
    };
    let job = match client
        .get(&format!(
            "/api/v1/jobs/{id}?include=executions&exec_limit=100000"
        ))
        .await
    {
        Ok(j) => j,
        Err(e) => {
            eprintln!("beacon: {e}");
            return Ok(exit::for_client_error(&e));
        }
    };
    let mut problems: Vec<Problem> = Vec::new();
    let mut verified = 0usize;
    let mut skipped = 0usize;
    for e in job["executions"].as_array().into_iter().flatten() {
        let exec_id = e["id"].as_str().unwrap_or("?").to_string();
        if !matches!(
            e["status"].as_str(),
            Some("completed" | "failed" | "timeout")
        ) {
            skipped += 1; // pending, running or cancelled: nothing was served to vouch for
            continue;
        }
        let receipt = match client
            .get(&format!("/api/v1/executions/{exec_id}/receipt"))
            .await
        {
            Ok(r) => r,
            Err(err) => {
                problems.push(Problem {
                    execution: exec_id,
                    what: format!("no receipt: {err}"),
                });
                continue;
            }
        };
        match check(e, &receipt, &expected_key) {
            Ok(()) => verified += 1,
            Err(what) => problems.push(Problem {
                execution: exec_id,
                what,
            }),
        }
    }
    if as_json {
        let list: Vec<Value> = problems
            .iter()
            .map(|p| json!({"execution_id": p.execution, "problem": p.what}))
            .collect();
        println!(
            "{}",
            json!({"job_id": id, "verified": verified, "skipped": skipped, "problems": list, "public_key": expected_key})
        );
    } else {
        for p in &problems {
            println!("FAIL execution {}: {}", p.execution, p.what);
        }
        println!(
            "{}: {verified} receipts verified, {} problems, {skipped} executions without a served answer (key {expected_key})",
            if problems.is_empty() { "ok" } else { "FAILED" },
            problems.len()
        );
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Checks one receipt against its execution.
fn check(e: &Value, receipt: &Value, expected_key: &str) -> Result<(), String> {
    let r: Receipt = serde_json::from_value(receipt.clone())
        .map_err(|err| format!("receipt unreadable: {err}"))?;
    r.verify().map_err(|err| format!("signature: {err}"))?;
    if r.public_key.as_deref() != Some(expected_key) {
        return Err(format!(
            "signed by {} instead of the runner's key {expected_key}",
            r.public_key.unwrap_or_default()
        ));
    }
    for (field, want) in [
        ("execution_id", &e["id"]),
        ("job_id", &e["job_id"]),
        ("question_id", &e["question_id"]),
        ("model_id", &e["model_id"]),
        ("region", &e["region"]),
        ("status", &e["status"]),
    ] {
        let got = receipt[field].as_str();
        if got != want.as_str() {
            return Err(format!(
                "receipt says {field} = {got:?}, the execution says {want}"
            ));
        }
    }
    let answer = e["output"]["response"].as_str();
    let answer = if e["status"] == "completed" {
        answer
    } else {
        None
    };
    if !r.matches_answer(answer) {
        return Err("the stored answer does not match the hash in its signed receipt (changed after signing)".into());
    }
    Ok(())
}
