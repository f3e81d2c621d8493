//! The runner against an authenticated router (issue 11, item 2): with the router's
//! token (`ROUTER_TOKEN`) a job completes; with a wrong one every execution fails with
//! `ROUTER_UNAUTHORIZED` after one attempt, no provider is called, and the runner's
//! health says the router refuses its token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn router_service(http: &reqwest::Client, runner: &str) -> Value {
    let health: Value = http
        .get(format!("{runner}/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "router")
        .cloned()
        .unwrap()
}

backend_test!(
    a_job_completes_against_a_router_that_requires_a_token,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        // The router refuses calls without the token (the runner sends it).
        let anonymous = reqwest::Client::new()
            .post(format!("{}/inference", stack.router.url))
            .json(&json!({"model": "llama3.2-1b", "prompt": "hi", "region_preference": "us-east"}))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401);
        let spec = stack.spec(
            "job-token",
            &["math_basic", "geography_basic"],
            &["llama3.2-1b"],
            &["US", "EU"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-token", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed", "{job}");
        assert!(executions(&job).iter().all(|e| e["status"] == "completed"));
        let router = router_service(&stack.http, &stack.runner.url).await;
        assert_eq!(router["status"], "healthy", "{router}");
        stack.shutdown().await;
    }
);

backend_test!(
    a_wrong_router_token_fails_each_execution_once_and_buys_nothing,
    |backend| async move {
        // The stack's own runner only takes submissions; the runner with the wrong
        // token claims and runs the job.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scheduler: "enabled = false".into(),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let mut cfg = runner_config(&stack.db.url, &stack.router.url, "max_attempts = 3");
        cfg.router_token = Some("not-the-router-token-0123456789".into());
        let wrong = beacon_runner::start(cfg).await.unwrap();
        let spec = stack.spec(
            "job-wrong-token",
            &["math_basic", "geography_basic"],
            &["llama3.2-1b"],
            &["US", "EU"],
            // No early stop: every execution meets the refusal itself.
            json!({"constraints": {"min_success_rate": 0}}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-wrong-token", Duration::from_secs(30))
            .await;
        // (With min_success_rate 0 the job's verdict is `completed` whatever happened;
        // what matters here is each execution.)
        let execs = executions(&job);
        assert_eq!(execs.len(), 4);
        for e in &execs {
            assert_eq!(e["status"], "failed", "{e}");
            assert_eq!(e["error_code"], "ROUTER_UNAUTHORIZED", "{e}");
            assert_eq!(e["failure"]["transient"], false, "{e}");
            assert_eq!(e["failure"]["http_status"], 401, "{e}");
            assert_eq!(e["attempts"], 1, "not retried: {e}");
        }
        assert!(
            stack.all_live_calls().is_empty(),
            "no provider was called for a refused runner"
        );
        // The runner's health names the cause; the router itself is up.
        let router = router_service(&stack.http, &wrong.url).await;
        assert_eq!(router["status"], "unauthorized", "{router}");
        assert!(
            router["error"].as_str().unwrap().contains("ROUTER_TOKEN"),
            "{router}"
        );
        wrong.shutdown().await;
        stack.shutdown().await;
    }
);
