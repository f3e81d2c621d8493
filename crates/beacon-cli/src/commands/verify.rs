//! `beacon verify JOB`: fetches every execution and its receipt and checks, offline,
//! that each receipt is signed by the runner's key, describes that execution, and
//! hashes exactly the answer the runner now serves, and (unless `--no-log`) that the
//! receipt is in the runner's transparency log (`transparency.rs`). Any stored answer
//! changed after signing, and any receipt missing from the log or whose proof fails,
//! is named.

use std::time::Duration;

use beacon_core::receipt::Receipt;
use serde_json::{Value, json};

use super::transparency::{LogCheck, Standing};
use crate::client::Client;
use crate::exit;

/// One problem with one execution.
struct Problem {
    execution: String,
    what: String,
}

/// `log_wait`: how long a receipt not yet in the transparency log is waited for;
/// `None` skips the log (`--no-log`).
pub async fn verify(
    id: &str,
    runner: &str,
    public_key: Option<String>,
    log_wait: Option<Duration>,
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
    let mut log = match log_wait {
        None => None,
        Some(wait) => match LogCheck::start(&client, wait).await {
            Ok(check) => Some(check),
            Err(what) => {
                problems.push(Problem {
                    execution: "(all)".into(),
                    what: format!("transparency log: {what}"),
                });
                None
            }
        },
    };
    let mut standings: Vec<Value> = Vec::new();
    let (mut logged, mut unlogged) = (0usize, 0usize);
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
                execution: exec_id.clone(),
                what,
            }),
        }
        if let Some(log) = log.as_mut() {
            // The log holds the signed receipt; the runner's receipt route adds the
            // portal's unsigned display paths next to it, which are not logged.
            let signed = beacon_core::receipt::signed_part(&receipt);
            let standing = log.check(&exec_id, &signed).await;
            standings.push(standing.to_json(&exec_id));
            match standing {
                Standing::Ok { .. } => logged += 1,
                Standing::Missing(why) | Standing::Fails(why) => {
                    unlogged += 1;
                    problems.push(Problem {
                        execution: exec_id,
                        what: format!("transparency log: {why}"),
                    });
                }
            }
        }
    }
    let head = log.as_ref().and_then(|l| l.latest);
    let head_text = head.map_or_else(
        || "not checked".to_string(),
        |(size, root)| {
            format!(
                "{logged} in the transparency log, {unlogged} not (root {} of {size} entries)",
                beacon_core::transparency::to_hex(&root)
            )
        },
    );
    if as_json {
        let list: Vec<Value> = problems
            .iter()
            .map(|p| json!({"execution_id": p.execution, "problem": p.what}))
            .collect();
        println!(
            "{}",
            json!({"job_id": id, "verified": verified, "skipped": skipped, "problems": list, "public_key": expected_key,
                   "log": {"checked": log_wait.is_some(), "logged": logged, "not_logged": unlogged,
                           "tree_size": head.map(|h| h.0), "root": head.map(|h| beacon_core::transparency::to_hex(&h.1)),
                           "executions": standings}})
        );
    } else {
        for p in &problems {
            println!("FAIL execution {}: {}", p.execution, p.what);
        }
        println!(
            "{}: {verified} receipts verified, {} problems, {skipped} executions without a served answer (key {expected_key}); {head_text}",
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
