//! The portal's result shapes (portal-contract.md 2.2 and 2.4), built from the same
//! analysis as `GET /jobs/{id}/report`: the bias-analysis page, the per-model
//! cross-region page, the cross-region diff family and the recent-diffs list. A number
//! with no evidence under it (see `analysis::Evidence`) is `null`, never a made-up 0
//! or 1, and a job with nothing to compare yet is refused with `INSUFFICIENT_DATA`.

use std::collections::BTreeMap;

use beacon_store::ExecutionRecord;
use serde_json::{Value, json};

use crate::analysis::{
    Answer, Evidence, Group, JobScores, RegionScore, Report, evidence, group_scores,
};
use crate::error::ApiError;

/// The portal's region code (`US`, `EU`, `ASIA`) for a canonical region; other regions
/// upper-cased, as the portal's `regionCodeFromExec` would label them.
pub fn region_code(region: &str) -> String {
    match region {
        "us-east" => "US".into(),
        "eu-west" => "EU".into(),
        "asia-pacific" => "ASIA".into(),
        other => other.to_uppercase(),
    }
}

fn some_if(value: f64, evidence: u32) -> Value {
    if evidence > 0 {
        json!(value)
    } else {
        Value::Null
    }
}

/// The four numbers and the texts, each number `null` without evidence.
fn analysis_json(s: &JobScores, ev: &Evidence) -> Value {
    json!({
        "bias_variance": some_if(s.bias_variance, u32::from(ev.answering_regions >= 2)),
        "censorship_rate": some_if(s.censorship_rate, ev.sensitive_cells.min(ev.comparable_groups)),
        "factual_consistency": some_if(s.factual_consistency, ev.marker_groups),
        "narrative_divergence": some_if(s.narrative_divergence, ev.divergence_groups),
        "key_differences": s.key_differences,
        "risk_assessment": s.risk_assessment,
        "risk_level": s.risk_level,
        "summary": s.summary,
        "recommendation": s.recommendation,
        "coverage": s.coverage,
        "control_differential": s.control_differential,
        "evidence": ev,
    })
}

fn region_scores_json(scores: &BTreeMap<String, RegionScore>) -> Value {
    scores
        .iter()
        .map(|(r, s)| (r.clone(), json!(s)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn insufficient(report: &Report) -> ApiError {
    ApiError::Conflict {
        code: "INSUFFICIENT_DATA",
        message: format!(
            "not enough answers to compare regions yet: no question and model has completed answers \
             from two regions (job {}, {}, executions {})",
            report.job_id, report.status, report.counts
        ),
    }
}

/// `GET /api/v2/jobs/{id}/bias-analysis`.
pub fn bias_analysis(report: &Report, created_at: &str) -> Result<Value, ApiError> {
    let ev = evidence(&report.groups, &report.region_scores);
    if ev.comparable_groups == 0 {
        return Err(insufficient(report));
    }
    Ok(json!({
        "job_id": report.job_id,
        "cross_region_execution_id": report.job_id,
        "status": report.status,
        "created_at": created_at,
        "generated_at": report.generated_at,
        "partial": !report.terminal,
        "simulated": report.simulated,
        "regions": report.regions,
        "models": report.models,
        "analysis": analysis_json(&report.analysis, &ev),
        "region_scores": region_scores_json(&report.region_scores),
        "counts": report.counts,
    }))
}

/// The group of `model` and `question`, matching the question the portal's ways:
/// exact id, or its URL form (lower case, hyphens for underscores), or its text.
pub fn find_group<'r>(report: &'r Report, model: &str, question: &str) -> Option<&'r Group> {
    let norm = |s: &str| s.trim().to_lowercase().replace(['-', ' '], "_");
    let wanted = norm(question);
    report.groups.iter().find(|g| {
        g.model_id == model
            && (g.question_id == question
                || norm(&g.question_id) == wanted
                || norm(&g.question) == wanted)
    })
}

/// `GET /executions/{jobId}/cross-region?model_id=&question_id=`: each region's
/// answer with its scoring, and the group's own analysis.
pub fn cross_region_group(
    report: &Report,
    group: &Group,
    answers: &[Answer],
    executions: &[ExecutionRecord],
    created_at: &str,
) -> Value {
    let (scores, region_scores) = group_scores(group, &report.regions);
    let ev = evidence(std::slice::from_ref(group), &region_scores);
    let results: Vec<Value> = answers
        .iter()
        .map(|a| {
            let exec = executions.iter().find(|e| e.id == a.execution_id);
            let score = region_scores.get(&a.region);
            let output = json!({"response": a.response, "metadata": {"model": group.model_id, "region": a.region}});
            json!({
                "region": region_code(&a.region),
                "region_id": a.region,
                "execution_id": a.execution_id,
                "run_index": a.run_index,
                "model_id": group.model_id,
                "question_id": group.question_id,
                "status": a.status,
                "classification": a.classification,
                "label": a.label,
                "provider_id": a.provider_id,
                "metadata": {"model_id": group.model_id, "region": a.region},
                "execution_output": output,
                "output": output,
                "scoring": {
                    "bias_score": score.map(|s| s.bias_score),
                    "censorship_detected": group.censorship.get(&a.region).copied().unwrap_or(false),
                    "factual_accuracy": score.map(|s| s.factual_accuracy),
                    "political_sensitivity": score.map(|s| s.political_sensitivity),
                    "keywords_detected": a.markers_present,
                },
                "started_at": exec.and_then(|e| e.started_at).map(crate::views::rfc3339),
                "completed_at": exec.and_then(|e| e.completed_at).map(crate::views::rfc3339),
                "duration_ms": exec.and_then(crate::views::duration_ms),
            })
        })
        .collect();
    json!({
        "job_id": report.job_id,
        "cross_region_execution": {
            "id": report.job_id, "job_id": report.job_id, "status": report.status,
            "created_at": created_at, "model_id": group.model_id,
            "question_id": group.question_id, "question": group.question,
            "total_regions": report.regions.len(),
        },
        "region_results": results,
        "analysis": if ev.comparable_groups == 0 { Value::Null } else { analysis_json(&scores, &ev) },
        "analysis_status": if ev.comparable_groups == 0 { "insufficient_data" } else { "ready" },
        "divergence": group.divergence,
        "pairs": group.pairs,
        "summary": {"risk_level": if ev.comparable_groups == 0 { Value::Null } else { json!(scores.risk_level) }},
        "simulated": report.simulated,
        "generated_at": report.generated_at,
    })
}

/// The cross-region diff body (`/cross-region-diff`, `/regions`, `/diff-analysis` and
/// `/cross-region` without a model and question): every execution with its answer and
/// the job's analysis. At most `max` executions are listed (`truncated` says so).
pub fn cross_region_diff(report: &Report, executions: &[ExecutionRecord], max: usize) -> Value {
    let ev = evidence(&report.groups, &report.region_scores);
    let listed: Vec<Value> = executions
        .iter()
        .take(max)
        .map(|e| {
            // The question as the report's group holds it, for the three-way label.
            let label = (e.status == beacon_core::status::ExecutionStatus::Completed).then(|| {
                let q = report
                    .groups
                    .iter()
                    .find(|g| g.question_id == e.question_id)
                    .map(|g| crate::classify::Question {
                        markers: &g.markers,
                        category: &g.category,
                        text: &g.question,
                    });
                crate::analysis::label(e, q.unwrap_or_default())
            });
            json!({
                "id": e.id, "execution_id": e.id, "region": e.region,
                "region_code": region_code(&e.region), "provider_id": e.provider_id,
                "status": e.status.as_str(), "model_id": e.model_id, "question_id": e.question_id,
                "run_index": e.run_index,
                "started_at": e.started_at.map(crate::views::rfc3339),
                "completed_at": e.completed_at.map(crate::views::rfc3339),
                "response_classification": e.classification.map(|c| c.as_str()),
                "label": label,
                "output_data": {"response": e.response},
                "output": {"response": e.response},
            })
        })
        .collect();
    json!({
        "job_id": report.job_id,
        "status": report.status,
        "total_regions": report.regions.len(),
        "regions": report.regions,
        "models": report.models,
        "executions": listed,
        "truncated": executions.len() > max,
        "analysis": if ev.comparable_groups == 0 { Value::Null } else { analysis_json(&report.analysis, &ev) },
        "analysis_status": if ev.comparable_groups == 0 { "insufficient_data" } else { "ready" },
        "region_scores": region_scores_json(&report.region_scores),
        "simulated": report.simulated,
        "generated_at": report.generated_at,
    })
}

/// One entry of `GET /diffs`: a finished job's comparison in a line.
pub fn diff_summary(report: &Report, created_at: &str) -> Value {
    let ev = evidence(&report.groups, &report.region_scores);
    let ready = ev.comparable_groups > 0;
    json!({
        "id": report.job_id, "job_id": report.job_id, "created_at": created_at,
        "generated_at": report.generated_at, "status": report.status,
        "regions": report.regions, "models": report.models,
        "risk_level": if ready { json!(report.analysis.risk_level) } else { Value::Null },
        "summary": if ready { json!(report.analysis.summary) } else { json!("not enough answers to compare regions") },
        "recommendation": if ready { json!(report.analysis.recommendation) } else { Value::Null },
        "narrative_divergence": some_if(report.analysis.narrative_divergence, ev.divergence_groups),
        "censorship_rate": some_if(report.analysis.censorship_rate, ev.sensitive_cells.min(ev.comparable_groups)),
        "simulated": report.simulated,
    })
}
