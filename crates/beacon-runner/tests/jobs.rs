//! Acceptance 1-3 on PostgreSQL and SQLite: every execution exists from acceptance,
//! every one ends terminal with provenance and a receipt that verifies; a broken
//! region's failures explain themselves; empty answers are completed, not failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_core::receipt::Receipt;
use beacon_sim::Faults;
use common::*;
use serde_json::{Value, json};

const Q3: [&str; 3] = ["math_basic", "tiananmen_neutral", "taiwan_status"];

backend_test!(
    a_27_execution_job_runs_to_completion_with_receipts,
    |backend| async move {
        // The stack's runner is API-only: it accepts the job and nothing runs it yet.
        let opts = Opts {
            scheduler: "enabled = false".into(),
            ..Opts::default()
        };
        let Some(stack) = Stack::start(backend, opts).await else {
            return;
        };
        let api_only = &stack.runner;
        let spec = stack.spec("job-27", &Q3, &MODELS, &["US", "EU", "ASIA"], json!({}));
        let resp = stack
            .http
            .post(format!("{}/api/v1/jobs", api_only.url))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (
                body["id"].as_str(),
                body["job_id"].as_str(),
                body["total_executions"].as_u64()
            ),
            (Some("job-27"), Some("job-27"), Some(27))
        );
        let (_, job) = {
            let r = stack
                .http
                .get(format!(
                    "{}/api/v1/jobs/job-27?include=executions",
                    api_only.url
                ))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        };
        let execs = executions(&job);
        assert_eq!(
            execs.len(),
            27,
            "every execution is a row from the moment of acceptance"
        );
        assert!(execs.iter().all(|e| e["status"] == "pending"), "{job}");
        assert_eq!(job["job"]["id"], "job-27", "the stored spec is served back");

        // A scheduling instance runs it.
        let worker = stack.second_runner("").await;
        let job = eventually(Duration::from_secs(30), "job-27 completed", || async {
            let r = stack
                .http
                .get(format!(
                    "{}/api/v1/jobs/job-27?include=executions",
                    worker.url
                ))
                .send()
                .await
                .unwrap();
            let j: Value = r.json().await.unwrap();
            (j["status"] == "completed").then_some(j)
        })
        .await;
        let execs = executions(&job);
        assert_eq!(execs.len(), 27);
        for e in &execs {
            assert_eq!(e["status"], "completed", "{e}");
            let region = e["region"].as_str().unwrap();
            assert_eq!(
                e["provider_id"],
                format!("sim-{region}"),
                "answered by a provider of the region asked for"
            );
            assert_eq!(e["output"]["region"], region);
            assert!(!e["output"]["response"].as_str().unwrap().is_empty());
            let (status, r) = {
                let resp = stack
                    .http
                    .get(format!(
                        "{}/api/v1/executions/{}/receipt",
                        worker.url,
                        e["id"].as_str().unwrap()
                    ))
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            };
            assert_eq!(status, 200);
            let receipt: Receipt = serde_json::from_value(r).unwrap();
            assert!(receipt.verify().is_ok(), "receipt of {} verifies", e["id"]);
            assert!(receipt.matches_answer(e["output"]["response"].as_str()));
            assert_eq!(receipt.region, region);
        }
        assert_eq!(job["progress"]["completed"], 27);
        assert_eq!(
            stack.all_live_calls().len(),
            27,
            "one provider call per execution"
        );
        worker.shutdown().await;
        stack.shutdown().await;
    }
);

backend_test!(
    a_broken_region_fails_with_explained_failures,
    |backend| async move {
        let faults = [(
            "eu-west",
            Faults {
                inference_broken: true,
                ..Faults::default()
            },
        )]
        .into_iter()
        .collect();
        // Once its only provider is ejected, eu-west answers NO_HEALTHY_PROVIDER: the
        // executions wait for it (free: nothing is bought) for 1 s, then fail.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                faults,
                scheduler: "max_wait_for_provider = \"1s\"".into(),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-eu-broken",
            &Q3,
            &MODELS,
            &["us-east", "eu-west", "asia-pacific"],
            json!({"constraints": {"min_success_rate": 0.5}}),
        );
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 202, "{body}");
        let job = stack
            .wait_terminal("job-eu-broken", Duration::from_secs(30))
            .await;
        assert_eq!(
            job["status"], "completed",
            "18 of 27 ≥ 0.5: {}",
            job["progress"]
        );
        for e in executions(&job) {
            let has_answer = e["output"]["response"]
                .as_str()
                .is_some_and(|r| !r.is_empty());
            assert!(
                has_answer || e["failure"].is_object(),
                "no execution without output and without failure: {e}"
            );
            if e["region"] == "eu-west" {
                assert_eq!(e["status"], "failed", "{e}");
                let f = &e["failure"];
                let message = f["message"].as_str().unwrap();
                let names_provider =
                    f["provider"] == "sim-eu-west" || message.contains("sim-eu-west");
                assert!(
                    names_provider && message.contains("404"),
                    "the failure names the provider and the 404: {f}"
                );
                assert!(f["code"].is_string() && f["stage"].is_string());
                assert_eq!(e["classification"], "technical_failure");
            } else {
                assert_eq!(e["status"], "completed", "{e}");
            }
        }
        stack.shutdown().await;
    }
);

backend_test!(
    empty_answers_are_completed_not_failed,
    |backend| async move {
        let faults = [(
            "us-east",
            Faults {
                empty_rate: 1.0,
                ..Faults::default()
            },
        )]
        .into_iter()
        .collect();
        let Some(stack) = Stack::start(
            backend,
            Opts {
                faults,
                regions: vec!["us-east"],
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-empty",
            &["math_basic"],
            &["llama3.2-1b", "mistral-7b"],
            &["us-east"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-empty", Duration::from_secs(20))
            .await;
        assert_eq!(job["status"], "completed");
        for e in executions(&job) {
            assert_eq!(e["status"], "completed");
            assert_eq!(e["classification"], "empty_response");
            assert_eq!(e["output"]["response"], "");
            assert_eq!(e["output"]["warnings"], json!(["EMPTY_MODEL_RESPONSE"]));
            assert!(e["failure"].is_null());
            assert_eq!(e["attempts"], 1, "an empty answer is not retried");
        }
        stack.shutdown().await;
    }
);
