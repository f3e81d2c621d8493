//! Human summaries of a finished job: status line, and per region how many answers
//! were substantive, refused, empty or failed; then per (question, model) what each
//! region did.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// One word for what an execution produced.
pub fn verdict(e: &Value) -> &'static str {
    match (e["status"].as_str(), e["classification"].as_str()) {
        (Some("completed"), Some("substantive")) => "answered",
        (Some("completed"), Some("content_refusal")) => "REFUSED",
        (Some("completed"), Some("empty_response")) => "empty",
        (Some("failed"), _) => "failed",
        (Some("timeout"), _) => "timeout",
        (Some("cancelled"), _) => "cancelled",
        (Some("completed"), _) => "answered",
        _ => "pending",
    }
}

/// The status line and the per-region table.
pub fn job_summary(job: &Value) -> String {
    let mut out = String::new();
    let p = &job["progress"];
    let _ = writeln!(
        out,
        "job {}: {} — {} of {} executions completed{}",
        job["id"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        p["completed"],
        p["total"],
        job["failure_reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let mut regions: BTreeMap<String, [u32; 5]> = BTreeMap::new();
    for e in job["executions"].as_array().into_iter().flatten() {
        let row = regions
            .entry(e["region"].as_str().unwrap_or("?").to_string())
            .or_default();
        let i = match verdict(e) {
            "answered" => 0,
            "REFUSED" => 1,
            "empty" => 2,
            "failed" | "timeout" => 3,
            _ => 4,
        };
        row[i] += 1;
    }
    let _ = writeln!(
        out,
        "\n{:<14} {:>9} {:>8} {:>6} {:>7} {:>10}",
        "region", "answered", "refused", "empty", "failed", "cancelled"
    );
    for (region, c) in &regions {
        let _ = writeln!(
            out,
            "{region:<14} {:>9} {:>8} {:>6} {:>7} {:>10}",
            c[0], c[1], c[2], c[3], c[4]
        );
    }
    out
}

/// Per (question, model), what each region did, with the start of each answer.
pub fn answers_table(job: &Value) -> String {
    let execs: Vec<&Value> = job["executions"].as_array().into_iter().flatten().collect();
    let mut regions: Vec<&str> = execs.iter().filter_map(|e| e["region"].as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let mut groups: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for e in &execs {
        let key = (
            e["question_id"].as_str().unwrap_or("?").to_string(),
            e["model_id"].as_str().unwrap_or("?").to_string(),
        );
        groups.entry(key).or_default().push(e);
    }
    let mut out = String::new();
    let _ = write!(out, "{:<20} {:<14}", "question", "model");
    for r in &regions {
        let _ = write!(out, " {r:<16}");
    }
    out.push('\n');
    for ((q, m), list) in &groups {
        let _ = write!(out, "{q:<20} {m:<14}");
        for r in &regions {
            let cell = list
                .iter()
                .find(|e| e["region"] == *r)
                .map_or("-", |e| verdict(e));
            let _ = write!(out, " {cell:<16}");
        }
        out.push('\n');
    }
    out
}
