//! Acceptance 6: with a 30 % error rate every attempt is recorded, transient failures
//! are retried, and every execution's final status matches what the simulator served
//! (mismatch 0); a non-transient failure is not retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_core::receipt::sha256_hex;
use beacon_sim::{Faults, Outcome};
use common::*;
use serde_json::{Value, json};

backend_test!(
    transient_failures_retry_and_match_the_simulator,
    |backend| async move {
        let flaky = Faults {
            error_rate: 0.3,
            ..Faults::default()
        };
        let faults = REGIONS.iter().map(|r| (*r, flaky.clone())).collect();
        // A flaky (not broken) provider: keep the router from ejecting the region's only
        // provider, so most attempts reach it.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                faults,
                unhealthy_after: Some(10),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let questions = [
            "math_basic",
            "geography_basic",
            "identity_basic",
            "tiananmen_neutral",
        ];
        let spec = stack.spec(
            "job-flaky",
            &questions,
            &MODELS,
            &["US", "EU", "ASIA"],
            json!({"constraints": {"min_success_rate": 0.5}}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-flaky", Duration::from_secs(60))
            .await;
        let catalogue = beacon_core::Catalogue::builtin();
        let mut mismatches = Vec::new();
        let mut retried = 0;
        for e in executions(&job) {
            let text = &catalogue
                .get(e["question_id"].as_str().unwrap())
                .unwrap()
                .text;
            let sha = sha256_hex(text);
            let region = e["region"].as_str().unwrap();
            let calls: Vec<_> = stack
                .live_calls(region)
                .into_iter()
                .filter(|c| c.prompt_sha256 == sha && c.model == e["model_id"])
                .collect();
            let attempts = e["attempts"].as_u64().unwrap() as usize;
            if attempts > 1 {
                retried += 1;
            }
            // Every attempt is recorded with its outcome; those that reached a provider
            // name it (the router may also refuse one while it has ejected the provider).
            let (_, details) = stack
                .get(&format!(
                    "/api/v1/executions/{}/details",
                    e["id"].as_str().unwrap()
                ))
                .await;
            let history = details["attempt_history"].as_array().unwrap();
            assert_eq!(history.len(), attempts, "{details}");
            assert!(
                history.iter().all(|a| a["outcome"].is_string()),
                "{details}"
            );
            let reached = history
                .iter()
                .filter(|a| a["provider_id"].is_string())
                .count();
            let served_ok = calls
                .last()
                .is_some_and(|c| matches!(c.outcome, Outcome::Ok | Outcome::Empty));
            let recorded_ok = e["status"] == "completed";
            if calls.len() != reached || served_ok != recorded_ok {
                mismatches.push(format!("{} {region}: {} calls {:?}, runner {} after {attempts} ({reached} reached the provider)", e["id"], calls.len(), calls.iter().map(|c| c.outcome).collect::<Vec<_>>(), e["status"]));
            }
        }
        assert!(mismatches.is_empty(), "status mismatches: {mismatches:#?}");
        assert!(retried > 0, "a 30 % error rate made some executions retry");
        stack.shutdown().await;
    }
);

backend_test!(
    a_non_transient_failure_is_not_retried,
    |backend| async move {
        // The router believes us-east serves qwen, the provider says "Unknown model".
        let sim_models = [(
            "us-east",
            vec!["llama3.2-1b".to_string(), "mistral-7b".to_string()],
        )]
        .into_iter()
        .collect();
        let Some(stack) = Stack::start(
            backend,
            Opts {
                sim_models,
                regions: vec!["us-east"],
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-unknown-model",
            &["math_basic"],
            &["qwen2.5-1.5b", "llama3.2-1b"],
            &["us-east"],
            json!({"constraints": {"min_success_rate": 0.5}}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-unknown-model", Duration::from_secs(20))
            .await;
        let qwen: Vec<Value> = executions(&job)
            .into_iter()
            .filter(|e| e["model_id"] == "qwen2.5-1.5b")
            .collect();
        assert_eq!(qwen.len(), 1);
        let e = &qwen[0];
        assert_eq!(e["status"], "failed");
        assert_eq!(e["attempts"], 1, "not retried: {e}");
        assert_eq!(e["failure"]["transient"], false);
        assert!(
            e["failure"]["message"]
                .as_str()
                .unwrap()
                .contains("Unknown model"),
            "{e}"
        );
        let calls = stack
            .live_calls("us-east")
            .into_iter()
            .filter(|c| c.model == "qwen2.5-1.5b")
            .count();
        assert_eq!(calls, 1);
        stack.shutdown().await;
    }
);
