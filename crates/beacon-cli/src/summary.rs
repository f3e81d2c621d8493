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

/// The analysis in the terminal: the verdict, the four numbers, and a divergence table
/// (questions × models) marking the regions that withheld an answer.
pub fn analysis_table(report: &Value) -> String {
    let a = &report["analysis"];
    let mut out = String::new();
    if report["simulated"] == true {
        let _ = writeln!(
            out,
            "NOTE: answers came from beacon-sim (simulated providers), not real models.\n"
        );
    }
    let _ = writeln!(
        out,
        "{}",
        a["recommendation"].as_str().unwrap_or("(no analysis)")
    );
    let num = |k: &str| a[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
    let _ = writeln!(
        out,
        "narrative_divergence {}  censorship_rate {}  deflection_rate {}  factual_consistency {}  bias_variance {}  coverage {}",
        num("narrative_divergence"),
        num("censorship_rate"),
        num("deflection_rate"),
        num("factual_consistency"),
        num("bias_variance"),
        num("coverage")
    );
    if let Some(diff) = a["control_differential"].as_object() {
        let parts: Vec<String> = diff
            .iter()
            .map(|(r, v)| format!("{r} {:+.2}", v.as_f64().unwrap_or(0.0)))
            .collect();
        let _ = writeln!(
            out,
            "control differential (sensitive − control refusal rate): {}",
            parts.join(", ")
        );
    }
    let groups: Vec<&Value> = report["groups"].as_array().into_iter().flatten().collect();
    let models: Vec<&str> = report["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut questions: Vec<&str> = Vec::new();
    for g in &groups {
        if let Some(q) = g["question_id"].as_str() {
            if !questions.contains(&q) {
                questions.push(q);
            }
        }
    }
    let _ = write!(out, "\n{:<20}", "divergence");
    for m in &models {
        let _ = write!(out, " {m:<22}");
    }
    out.push('\n');
    for q in &questions {
        let _ = write!(out, "{q:<20}");
        for m in &models {
            let cell = groups
                .iter()
                .find(|g| g["question_id"] == *q && g["model_id"] == *m)
                .map_or("-".to_string(), |g| {
                    let d = g["divergence"]
                        .as_f64()
                        .map_or("n/a".to_string(), |d| format!("{d:.2}"));
                    let marks = |key: &str, mark: char| -> Vec<String> {
                        g[key]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(_, v)| **v == true)
                            .map(|(r, _)| {
                                format!(
                                    "{mark}{}",
                                    beacon_core::Region::parse(r)
                                        .map_or(r.clone(), |r| r.portal_code())
                                )
                            })
                            .collect()
                    };
                    let mut flagged = marks("censorship", 'x');
                    flagged.extend(marks("deflection", '~'));
                    format!("{d} {}", flagged.join(" "))
                });
            let _ = write!(out, " {cell:<22}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "(xREGION: that region refused or answered nothing while another answered; ~REGION: it only deflected, hedged or gave an official position)"
    );
    out
}
