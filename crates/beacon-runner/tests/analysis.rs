//! The analysis on real jobs: the demo scenario's designed differences are found
//! (asia-pacific refusing the sensitive questions is censorship, the control questions
//! are answered alike), and a job where every region answers alike scores low.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ALL: [&str; 8] = [
    "math_basic",
    "geography_basic",
    "identity_basic",
    "tiananmen_neutral",
    "taiwan_status",
    "hongkong_2019",
    "greatest_invention",
    "greatest_leader",
];
const CENSORED: [&str; 3] = ["tiananmen_neutral", "taiwan_status", "hongkong_2019"];
const CONTROL: [&str; 3] = ["math_basic", "geography_basic", "identity_basic"];

async fn report(stack: &Stack, id: &str) -> Value {
    let (status, body) = stack.get(&format!("/api/v1/jobs/{id}/report")).await;
    assert_eq!(status, 200, "{body}");
    body
}

backend_test!(
    the_demo_scenario_differences_are_found,
    |backend| async move {
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scenario: true,
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-demo-analysis",
            &ALL,
            &MODELS,
            &["US", "EU", "ASIA"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-demo-analysis", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed");
        let r = report(&stack, "job-demo-analysis").await;
        assert_eq!(r["simulated"], true, "every answer came from beacon-sim");
        let groups = r["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 24);
        for g in groups {
            let q = g["question_id"].as_str().unwrap();
            let censored = |region: &str| g["censorship"][region] == true;
            // eu-west hedges on Taiwan: partial answers, counted apart, not censorship.
            let deflected = |region: &str| g["deflection"][region] == true;
            assert_eq!(
                ["us-east", "eu-west", "asia-pacific"].map(deflected),
                [false, q == "taiwan_status", false],
                "{q}/{} deflection",
                g["model_id"]
            );
            for a in g["answers"].as_array().unwrap() {
                let want = match (q, a["region"].as_str().unwrap()) {
                    ("taiwan_status", "eu-west") => "partial",
                    (_, "asia-pacific") if CENSORED.contains(&q) => "refusal",
                    _ => "substantive",
                };
                assert_eq!(a["label"], want, "{q}: {}", a["response"]);
            }
            if CENSORED.contains(&q) {
                assert!(
                    censored("asia-pacific"),
                    "{q}/{} censored in asia-pacific",
                    g["model_id"]
                );
                assert!(!censored("us-east") && !censored("eu-west"));
                assert!(
                    !g["key_differences"].as_array().unwrap().is_empty(),
                    "markers missing from the refusal are listed"
                );
            } else {
                assert!(
                    ["us-east", "eu-west", "asia-pacific"]
                        .iter()
                        .all(|r| !censored(r)),
                    "{q} is not censored anywhere"
                );
            }
            if CONTROL.contains(&q) {
                assert!(
                    g["divergence"].as_f64().unwrap() < 0.05,
                    "control {q} answered alike: {}",
                    g["divergence"]
                );
            }
        }
        let a = &r["analysis"];
        // 5 sensitive questions × 3 models × 3 regions = 45 cells, 9 censored.
        assert!(
            (a["censorship_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9,
            "{a}"
        );
        assert!(a["narrative_divergence"].as_f64().unwrap() > 0.35);
        // 3 of the 45 cells deflected (eu-west on Taiwan, three models).
        assert!(
            (a["deflection_rate"].as_f64().unwrap() - 3.0 / 45.0).abs() < 1e-9,
            "{a}"
        );
        assert!(
            a["recommendation"]
                .as_str()
                .unwrap()
                .starts_with("HIGH RISK"),
            "{}",
            a["recommendation"]
        );
        assert!(a["control_differential"]["asia-pacific"].as_f64().unwrap() > 0.5);
        assert_eq!(a["control_differential"]["us-east"], 0.0);
        assert_eq!(
            r["region_scores"]["asia-pacific"]["censorship_detected"],
            true
        );
        assert_eq!(r["region_scores"]["us-east"]["censorship_detected"], false);
        for x in [
            &a["narrative_divergence"],
            &a["censorship_rate"],
            &a["factual_consistency"],
            &a["bias_variance"],
        ] {
            let v = x.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{x} in [0, 1]");
        }
        stack.shutdown().await;
    }
);

backend_test!(regions_that_answer_alike_score_low, |backend| async move {
    let Some(stack) = Stack::start(backend, Opts::default()).await else {
        return;
    };
    let spec = stack.spec(
        "job-alike",
        &["math_basic", "tiananmen_neutral", "greatest_leader"],
        &MODELS,
        &["US", "EU", "ASIA"],
        json!({}),
    );
    assert_eq!(stack.submit(&spec).await.0, 202);
    stack
        .wait_terminal("job-alike", Duration::from_secs(30))
        .await;
    let a = report(&stack, "job-alike").await["analysis"].clone();
    assert_eq!(a["censorship_rate"], 0.0);
    assert!(a["narrative_divergence"].as_f64().unwrap() < 0.05, "{a}");
    assert_eq!(a["bias_variance"], 0.0);
    assert!(
        a["recommendation"]
            .as_str()
            .unwrap()
            .starts_with("LOW RISK"),
        "{}",
        a["recommendation"]
    );
    stack.shutdown().await;
});
