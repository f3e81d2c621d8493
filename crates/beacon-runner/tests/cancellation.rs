//! Acceptance 4-5 and the shutdown hand-back: a cancel answers fast, cancels what is
//! left, aborts calls in flight, and no provider call starts after its answer; a job
//! that can no longer reach min_success_rate stops spending; SIGTERM hands work back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use beacon_sim::{Faults, Outcome};
use common::*;
use serde_json::json;

backend_test!(
    cancel_is_fast_and_no_call_starts_after_it,
    |backend| async move {
        let slow = Faults {
            latency_ms: 2000,
            ..Faults::default()
        };
        let faults = REGIONS.iter().map(|r| (*r, slow.clone())).collect();
        let opts = Opts {
            faults,
            scheduler: "max_concurrency_per_job = 6".into(),
            ..Opts::default()
        };
        let Some(stack) = Stack::start(backend, opts).await else {
            return;
        };
        let spec = stack.spec(
            "job-cancel",
            &["math_basic", "taiwan_status"],
            &MODELS,
            &["US", "EU", "ASIA"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        eventually(Duration::from_secs(15), "first completions", || async {
            let job = stack.job("job-cancel").await;
            (job["progress"]["completed"].as_u64().unwrap_or(0) >= 1).then_some(())
        })
        .await;
        let asked = Instant::now();
        let (status, body) = stack
            .post("/api/v1/jobs/job-cancel/cancel", &json!({}))
            .await;
        let answered_at = chrono::Utc::now();
        let took = asked.elapsed();
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_secs(1), "cancel answered in {took:?}");
        assert_eq!(body["new_status"], "cancelled");
        assert!(body["executions_cancelled"].as_u64().unwrap() > 0);

        let job = stack.job("job-cancel").await;
        assert_eq!(job["status"], "cancelled");
        for e in executions(&job) {
            assert!(
                e["status"] == "completed" || e["status"] == "cancelled",
                "{e}"
            );
        }
        // No call started after the cancel answer; the calls in flight were abandoned.
        let calls = stack.all_live_calls();
        for c in &calls {
            assert!(
                c.started_at <= answered_at,
                "call {} started at {} after the cancel answer at {answered_at}",
                c.id,
                c.started_at
            );
        }
        eventually(Duration::from_secs(2), "in-flight calls closed", || async {
            let calls = stack.all_live_calls();
            calls
                .iter()
                .all(|c| c.outcome != Outcome::Running)
                .then_some(())
        })
        .await;
        let abandoned = stack
            .all_live_calls()
            .iter()
            .filter(|c| c.outcome == Outcome::CancelledByClient)
            .count();
        assert!(
            abandoned > 0,
            "the calls in flight at the cancel were cancelled by the client"
        );
        // A second cancel is harmless.
        let (status, body) = stack
            .post("/api/v1/jobs/job-cancel/cancel", &json!({}))
            .await;
        assert_eq!(
            (status, body["new_status"].as_str()),
            (200, Some("cancelled"))
        );
        stack.shutdown().await;
    }
);

backend_test!(
    an_unreachable_success_rate_stops_the_spending,
    |backend| async move {
        let mut faults: std::collections::HashMap<&'static str, Faults> = REGIONS
            .iter()
            .map(|r| {
                (
                    *r,
                    Faults {
                        latency_ms: 300,
                        ..Faults::default()
                    },
                )
            })
            .collect();
        faults.insert(
            "eu-west",
            Faults {
                inference_broken: true,
                ..Faults::default()
            },
        );
        let opts = Opts {
            faults,
            scheduler: "max_concurrency_per_job = 4".into(),
            ..Opts::default()
        };
        let Some(stack) = Stack::start(backend, opts).await else {
            return;
        };
        let spec = stack.spec(
            "job-doomed",
            &["math_basic", "taiwan_status", "hongkong_2019"],
            &MODELS,
            &["eu-west", "us-east", "asia-pacific"],
            json!({"constraints": {"min_success_rate": 0.9}}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-doomed", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "failed");
        assert_eq!(job["failure_reason"], "min_success_rate_unreachable");
        let execs = executions(&job);
        assert!(
            execs.iter().any(|e| e["status"] == "cancelled"),
            "the rest was cancelled"
        );
        for e in execs.iter().filter(|e| e["status"] == "cancelled") {
            assert_eq!(e["failure"]["code"], "CANCELLED");
        }
        let finished =
            chrono::DateTime::parse_from_rfc3339(job["finished_at"].as_str().unwrap()).unwrap();
        let calls = stack.all_live_calls();
        assert!(
            calls.len() < 27,
            "fewer calls than executions: {}",
            calls.len()
        );
        for c in &calls {
            // The runner stops dispatching before it stamps `finished_at`; a request it
            // sent just before can still reach the simulator a moment after that stamp
            // (a loaded machine), and is then already being aborted.
            let late = c.started_at.signed_duration_since(finished);
            assert!(
                late <= chrono::Duration::zero()
                    || (late < chrono::Duration::milliseconds(100)
                        && c.outcome == beacon_sim::Outcome::CancelledByClient),
                "no call after the job failed: {c:?}"
            );
        }
        stack.shutdown().await;
    }
);

backend_test!(
    sigterm_hands_work_back_and_another_instance_finishes,
    |backend| async move {
        let slow = Faults {
            latency_ms: 1500,
            ..Faults::default()
        };
        let faults = REGIONS.iter().map(|r| (*r, slow.clone())).collect();
        let opts = Opts {
            faults,
            scheduler: "max_concurrency_per_job = 9".into(),
            ..Opts::default()
        };
        let Some(stack) = Stack::start(backend, opts).await else {
            return;
        };
        let spec = stack.spec(
            "job-handback",
            &["math_basic", "geography_basic"],
            &MODELS,
            &["US", "EU", "ASIA"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        eventually(Duration::from_secs(10), "calls in flight", || async {
            (stack.job("job-handback").await["progress"]["running"]
                .as_u64()
                .unwrap_or(0)
                > 0)
            .then_some(())
        })
        .await;
        // Graceful shutdown (SIGTERM) of the scheduling instance; a new one takes over.
        let mut stack = stack;
        let replacement = stack.second_runner("").await;
        let old = std::mem::replace(&mut stack.runner, replacement);
        old.shutdown().await;
        let job = stack
            .wait_terminal("job-handback", Duration::from_secs(30))
            .await;
        assert_eq!(
            job["status"], "completed",
            "nothing was lost: {}",
            job["progress"]
        );
        let execs = executions(&job);
        assert_eq!(execs.len(), 18);
        assert!(
            execs
                .iter()
                .all(|e| e["status"] == "completed" && e["failure"].is_null()),
            "handed back, not failed"
        );
        let calls = stack.all_live_calls();
        let completed_calls = calls.iter().filter(|c| c.outcome == Outcome::Ok).count();
        assert_eq!(completed_calls, 18, "nothing ran twice to completion");
        stack.shutdown().await;
    }
);
