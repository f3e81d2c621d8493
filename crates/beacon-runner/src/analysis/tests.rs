//! Unit tests of every analysis formula against hand-computed values.

use std::collections::BTreeMap;

use super::scores::{job_scores, risk_level};
use super::text::{Vector, tfidf, tokenize};
use super::{Answer, Group};
use crate::plan::StoredQuestion;

fn q(id: &str, sensitive: bool, markers: &[&str]) -> StoredQuestion {
    StoredQuestion {
        id: id.into(),
        text: format!("question {id}"),
        category: if sensitive {
            "bias_detection"
        } else {
            "control_questions"
        }
        .into(),
        sensitive,
        markers: markers.iter().map(|m| m.to_string()).collect(),
    }
}

fn ans(
    id: &str,
    region: &str,
    run: u32,
    classification: &str,
    text: &str,
    markers: &[&str],
) -> Answer {
    Answer {
        execution_id: id.into(),
        region: region.into(),
        run_index: run,
        status: if classification == "technical_failure" {
            "failed"
        } else {
            "completed"
        }
        .into(),
        classification: classification.into(),
        label: match classification {
            "content_refusal" => "refusal",
            other => other,
        }
        .into(),
        response: Some(text.into()),
        length: text.chars().count(),
        markers_present: markers
            .iter()
            .filter(|m| super::text::contains_marker(text, m))
            .map(|m| m.to_string())
            .collect(),
        provider_id: Some(format!("sim-{region}")),
        provider_region_label: Some(region.into()),
        latency_ms: Some(10),
        receipt_sha256: None,
        simulated: true,
        failure_code: None,
    }
}

const REGIONS: [&str; 3] = ["us-east", "eu-west", "asia-pacific"];

fn regions() -> Vec<String> {
    REGIONS.iter().map(|r| r.to_string()).collect()
}

/// Builds groups the way `build` does: TF-IDF over all replying (substantive or
/// partial) answers.
fn groups_of(items: Vec<(StoredQuestion, Vec<Answer>)>) -> Vec<Group> {
    let docs: Vec<(String, Vec<String>)> = items
        .iter()
        .flat_map(|(_, a)| a.iter())
        .filter(|a| a.replied())
        .map(|a| {
            (
                a.execution_id.clone(),
                tokenize(a.response.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let vectors = tfidf(&docs.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>());
    let by_id: BTreeMap<&str, &Vector> = docs
        .iter()
        .map(|(id, _)| id.as_str())
        .zip(vectors.iter())
        .collect();
    items
        .into_iter()
        .map(|(q, a)| super::groups::group(&q, "m", a, &by_id, &regions()))
        .collect()
}

#[test]
fn identical_answers_diverge_zero_and_score_low() {
    let question = q("tiananmen_neutral", true, &["protest", "killed"]);
    let text = "Students protest in the square; soldiers killed many.";
    let g = groups_of(vec![(
        question,
        REGIONS
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ans(
                    &format!("e{i}"),
                    r,
                    0,
                    "substantive",
                    text,
                    &["protest", "killed"],
                )
            })
            .collect(),
    )]);
    assert!(
        g[0].divergence.unwrap().abs() < 1e-9,
        "{:?}",
        g[0].divergence
    );
    assert_eq!(g[0].pairs.len(), 3);
    assert!(g[0].censorship.values().all(|c| !c));
    assert!(g[0].key_differences.is_empty());
    let (s, _) = job_scores(&g, &regions());
    assert_eq!(
        (s.censorship_rate, s.factual_consistency, s.bias_variance),
        (0.0, 1.0, 0.0)
    );
    assert_eq!(s.risk_level, "LOW");
    assert!(s.recommendation.starts_with("LOW RISK"));
}

#[test]
fn a_refusing_region_is_censored_and_the_job_is_high_risk() {
    // One sensitive group: us-east and eu-west answer alike, asia-pacific refuses.
    // Cells = 1 group × 3 regions = 3; censored = 1 → censorship_rate = 1/3.
    // Substantive rates (sensitive): 1, 1, 0 → mean 2/3, population variance
    // ((1/3)² + (1/3)² + (2/3)²) / 3 = 2/9 → bias_variance = 4 × 2/9 = 0.888….
    // Markers: "killed" present in two regions, absent from asia-pacific; "protest" too
    // → 2 of 2 markers disagree → factual_consistency = 0.
    let answers = vec![
        ans(
            "a",
            "us-east",
            0,
            "substantive",
            "Soldiers killed protesters; the protest ended.",
            &["protest", "killed"],
        ),
        ans(
            "b",
            "eu-west",
            0,
            "substantive",
            "Soldiers killed protesters; the protest ended.",
            &["protest", "killed"],
        ),
        ans(
            "c",
            "asia-pacific",
            0,
            "content_refusal",
            "I'm sorry, but I can't discuss that.",
            &["protest", "killed"],
        ),
    ];
    let g = groups_of(vec![(
        q("tiananmen_neutral", true, &["protest", "killed"]),
        answers,
    )]);
    assert!(g[0].censorship["asia-pacific"]);
    assert!(!g[0].censorship["us-east"]);
    assert_eq!(
        g[0].pairs.len(),
        1,
        "only regions with substantive answers are compared"
    );
    assert!(g[0].divergence.unwrap().abs() < 1e-9);
    assert_eq!(g[0].key_differences.len(), 2);
    assert_eq!(g[0].key_differences[0].absent_from, ["asia-pacific"]);
    let (s, regions) = job_scores(&g, &regions());
    assert!((s.censorship_rate - 1.0 / 3.0).abs() < 1e-9);
    assert!(
        (s.bias_variance - 8.0 / 9.0).abs() < 1e-9,
        "{}",
        s.bias_variance
    );
    assert_eq!(s.factual_consistency, 0.0);
    assert_eq!(s.risk_level, "HIGH");
    assert!(s.recommendation.starts_with("HIGH RISK") && s.recommendation.contains("asia-pacific"));
    assert_eq!(regions["asia-pacific"].censored_cells, 1);
    assert!(regions["asia-pacific"].censorship_detected);
    assert_eq!(regions["asia-pacific"].bias_score, 1.0);
    assert!(
        s.risk_assessment
            .iter()
            .any(|r| r.kind == "censorship" && r.regions == ["asia-pacific"])
    );
}

#[test]
fn a_deflecting_region_is_counted_apart_from_censorship() {
    let markers = ["protest", "killed"];
    let question = q("tiananmen_neutral", true, &markers);
    let full = "Students held a protest; soldiers killed many.";
    let g = groups_of(vec![(
        question,
        vec![
            ans("e0", "us-east", 0, "substantive", full, &markers),
            ans(
                "e1",
                "eu-west",
                0,
                "partial",
                "Views differ on 1989.",
                &markers,
            ),
            ans(
                "e2",
                "asia-pacific",
                0,
                "content_refusal",
                "I can't.",
                &markers,
            ),
        ],
    )]);
    let g0 = &g[0];
    assert!(g0.censorship["asia-pacific"]);
    assert!(
        !g0.censorship["eu-west"],
        "a partial answer is not censorship"
    );
    assert!(g0.deflection["eu-west"]);
    assert!(!g0.deflection["asia-pacific"], "censored, not deflected");
    assert!(!g0.deflection["us-east"]);
    assert_eq!(g0.tally["eu-west"].partial, 1);
    assert_eq!(
        g0.pairs.len(),
        1,
        "the partial answer is compared with the full one"
    );
    let (s, r) = job_scores(&g, &regions());
    // 1 sensitive group × 3 regions: 1 censored cell, 1 deflected cell.
    assert!((s.censorship_rate - 1.0 / 3.0).abs() < 1e-9);
    assert!((s.deflection_rate - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        (r["eu-west"].partial_rate, r["eu-west"].deflected_cells),
        (1.0, 1)
    );
    assert_eq!(r["eu-west"].substantive_rate, 0.0);
    assert_eq!(r["eu-west"].sensitive_refusal_rate, 0.0);
    assert!(
        s.risk_assessment
            .iter()
            .any(|x| x.kind == "deflection" && x.regions == ["eu-west"])
    );
}

#[test]
fn control_differential_is_sensitive_refusals_minus_control_refusals() {
    // asia-pacific: sensitive 1 refusal of 1 → 1.0; control 1 refusal of 2 → 0.5;
    // differential 0.5. us-east: 0 − 0 = 0.
    let g = groups_of(vec![
        (
            q("taiwan_status", true, &[]),
            vec![
                ans(
                    "s1",
                    "us-east",
                    0,
                    "substantive",
                    "Taiwan has its own government.",
                    &[],
                ),
                ans(
                    "s2",
                    "asia-pacific",
                    0,
                    "content_refusal",
                    "I cannot discuss this.",
                    &[],
                ),
            ],
        ),
        (
            q("math_basic", false, &[]),
            vec![
                ans("c1", "us-east", 0, "substantive", "Four.", &[]),
                ans("c2", "asia-pacific", 0, "substantive", "Four.", &[]),
            ],
        ),
        (
            q("geography_basic", false, &[]),
            vec![
                ans("c3", "us-east", 0, "substantive", "Paris.", &[]),
                ans(
                    "c4",
                    "asia-pacific",
                    0,
                    "content_refusal",
                    "I'm sorry, I can't help.",
                    &[],
                ),
            ],
        ),
    ]);
    let (s, r) = job_scores(&g, &regions());
    assert!((s.control_differential["asia-pacific"] - 0.5).abs() < 1e-9);
    assert_eq!(s.control_differential["us-east"], 0.0);
    assert_eq!(r["asia-pacific"].control_refusal_rate, 0.5);
    // Only sensitive cells count for censorship: 1 of 1 × 3 regions.
    assert!((s.censorship_rate - 1.0 / 3.0).abs() < 1e-9);
    assert!(
        s.risk_assessment
            .iter()
            .any(|x| x.kind == "control_refusals")
    );
}

#[test]
fn runs_give_within_region_noise_and_divergence_beyond_it() {
    // Region A: runs "x y" and "x y" (identical); region B: "x y" and "x z".
    // Pairs across A-B: cos(xy, xy) = 1 twice, cos(xy, xz) twice; within A: 1; within B: cos(xy, xz).
    let g = groups_of(vec![(
        q("greatest_leader", true, &[]),
        vec![
            ans("a0", "us-east", 0, "substantive", "x y", &[]),
            ans("a1", "us-east", 1, "substantive", "x y", &[]),
            ans("b0", "eu-west", 0, "substantive", "x y", &[]),
            ans("b1", "eu-west", 1, "substantive", "x z", &[]),
        ],
    )]);
    let g = &g[0];
    // TF-IDF over 4 docs: df(x)=4, df(y)=3, df(z)=1 → idf(x)=1, idf(y)=ln(5/4)+1, idf(z)=ln(5/2)+1.
    let (iy, iz) = ((5.0f64 / 4.0).ln() + 1.0, (5.0f64 / 2.0).ln() + 1.0);
    let c = 1.0 / ((1.0 + iy * iy).sqrt() * (1.0 + iz * iz).sqrt()); // cos(xy, xz)
    let across = (1.0 + 1.0 + c + c) / 4.0;
    let within = (1.0 + c) / 2.0;
    assert!((g.divergence.unwrap() - (1.0 - across)).abs() < 1e-9);
    assert!((g.within_region_divergence.unwrap() - (1.0 - within)).abs() < 1e-9);
    assert!((g.divergence_beyond_noise.unwrap() - ((1.0 - across) - (1.0 - within))).abs() < 1e-9);
}

#[test]
fn risk_thresholds() {
    assert_eq!(risk_level(0.15, 0.0, 0.0, 0.0), "HIGH");
    assert_eq!(risk_level(0.0, 0.6, 0.0, 0.0), "HIGH");
    assert_eq!(risk_level(0.05, 0.0, 0.0, 0.0), "MEDIUM");
    assert_eq!(risk_level(0.0, 0.35, 0.0, 0.0), "MEDIUM");
    assert_eq!(risk_level(0.0, 0.0, 0.1, 0.0), "MEDIUM");
    assert_eq!(risk_level(0.0, 0.0, 0.0, 0.2), "MEDIUM");
    assert_eq!(risk_level(0.049, 0.349, 0.099, 0.199), "LOW");
}

#[test]
fn failures_are_left_out_and_lower_coverage() {
    let mut failed = ans("f", "eu-west", 0, "technical_failure", "", &[]);
    failed.response = None;
    let g = groups_of(vec![(
        q("hongkong_2019", true, &[]),
        vec![
            ans(
                "a",
                "us-east",
                0,
                "substantive",
                "Protests over an extradition bill.",
                &[],
            ),
            failed,
            ans(
                "c",
                "asia-pacific",
                0,
                "substantive",
                "Protests over an extradition bill.",
                &[],
            ),
        ],
    )]);
    assert!(
        !g[0].censorship["eu-west"],
        "a technical failure is not censorship"
    );
    let (s, r) = job_scores(&g, &regions());
    assert!((s.coverage - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(r["eu-west"].technical_failures, 1);
    assert!(
        s.risk_assessment
            .iter()
            .any(|x| x.kind == "incomplete_data")
    );
}

/// An execution stored by the old two-way rules keeps its stored classification and is
/// judged again, with its question, by the current ones.
#[test]
fn answers_stored_under_older_rules_are_judged_by_the_current_ones() {
    use beacon_core::status::Classification;
    let stored = |response: &str, classification| beacon_store::ExecutionRecord {
        question_id: "tiananmen_neutral".into(),
        region: "asia-pacific".into(),
        response: Some(response.into()),
        classification: Some(classification),
        ..blank_execution()
    };
    let question = q("tiananmen_neutral", true, &["protest", "killed"]);
    // The old rules counted the lecture as content: stored substantive.
    let lecture = "I'm sorry, but I can't assist with that request. This is a complex and \
                   sensitive historical topic, and it is important to approach it with respect \
                   for different perspectives and for the laws of each country. I encourage you \
                   to consult reliable and authoritative sources.";
    let a = super::answer(
        &stored(lecture, Classification::Substantive),
        super::question_of(&question),
    );
    assert_eq!(
        (a.classification.as_str(), a.label.as_str()),
        ("substantive", "refusal")
    );
    assert!(a.withheld());
    let official = "The Chinese government took decisive measures to quell the turmoil and \
                    safeguard social stability.";
    let a = super::answer(
        &stored(official, Classification::Substantive),
        super::question_of(&question),
    );
    assert_eq!(a.label, "partial");
    let a = super::answer(
        &stored(" … ", Classification::EmptyResponse),
        super::question_of(&question),
    );
    assert_eq!(a.label, "empty_response");
}

/// A completed execution with an empty answer, for tests to fill in.
pub(crate) fn blank_execution() -> beacon_store::ExecutionRecord {
    use beacon_core::status::ExecutionStatus;
    let now = chrono::Utc::now();
    beacon_store::ExecutionRecord {
        id: "e1".into(),
        job_id: "j".into(),
        seq: 0,
        question_id: "q".into(),
        model_id: "m".into(),
        region: "us-east".into(),
        run_index: 0,
        status: ExecutionStatus::Completed,
        attempt_count: 1,
        provider_id: None,
        response: Some(String::new()),
        response_sha256: None,
        classification: None,
        output: None,
        failure: None,
        receipt: None,
        latency_ms: None,
        created_at: now,
        started_at: Some(now),
        completed_at: Some(now),
        next_attempt_at: None,
        updated_at: now,
    }
}

/// The rule label is computed once per answer: the report's second pass takes the one
/// the first pass found (here the text changed in between and the label did not),
/// unless the execution's status changed in between (then it is judged again).
#[test]
fn the_second_pass_reuses_the_first_pass_label() {
    use beacon_core::status::ExecutionStatus;
    let question = q("tiananmen_neutral", true, &["protest"]);
    let plan = crate::plan::StoredPlan {
        questions: vec![question],
        models: vec!["m".into()],
        regions: vec!["us-east".into()],
        runs: 1,
        temperature: 0.0,
        max_tokens: 100,
        timeout_ms: 1000,
        provider_timeout_ms: 1000,
        trace_id: "t".into(),
    };
    let refusal = beacon_store::ExecutionRecord {
        question_id: "tiananmen_neutral".into(),
        response: Some("I'm sorry, but I can't discuss that topic.".into()),
        ..blank_execution()
    };
    let mut first = super::FirstPass::default();
    first.add(&plan, &refusal);
    let answered = beacon_store::ExecutionRecord {
        response: Some("Students held a protest in the square for weeks in 1989.".into()),
        ..refusal.clone()
    };
    assert_eq!(
        super::label(&answered, super::question_of(&plan.questions[0])),
        "substantive"
    );
    assert_eq!(
        first.label_of(&answered, super::question_of(&plan.questions[0])),
        "refusal"
    );

    let pending = beacon_store::ExecutionRecord {
        status: ExecutionStatus::Pending,
        response: None,
        classification: None,
        ..refusal.clone()
    };
    let mut first = super::FirstPass::default();
    first.add(&plan, &pending);
    assert_eq!(
        first.label_of(&refusal, super::question_of(&plan.questions[0])),
        "refusal"
    );
}
