//! Drill: graceful shutdown mid-job. A runner child gets SIGTERM while calls are in
//! flight: it exits cleanly within its shutdown grace, the executions it was running go
//! back to `pending` (none `failed`), its lease is released; a second instance finishes
//! the job, and no cell is answered twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use beacon_drills::audit::answers_per_cell;
use beacon_drills::fleet::job_prompts;
use beacon_drills::{DbProbe, Fleet, Ledger, RunnerSettings, Shape, print_figures};
use beacon_sim::Outcome;
use serde_json::json;

const JOB: &str = "drill-sigterm";
/// The runner's `shutdown_grace`.
const GRACE: Duration = Duration::from_secs(5);
/// Process exit and a loaded machine, on top of the grace.
const EXIT_SLACK: Duration = Duration::from_secs(2);

fn runner(id: &str) -> RunnerSettings {
    RunnerSettings::fast(id)
        .scheduler("shutdown_grace", format!("{}s", GRACE.as_secs()))
        .scheduler("max_concurrency_per_job", 18)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_in_flight_work_back() {
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    // Long calls, so SIGTERM surely finds some in flight.
    let fleet = Fleet::steady(21, 1000).await.unwrap();
    let mut a = fleet.runner(&runner("runner-a"), pg.url()).await.unwrap();
    let shape = Shape::one_run(10);
    let total = shape.executions();
    let spec = fleet
        .spec(
            JOB,
            &shape,
            json!({"timeout": "5m", "provider_timeout": "30s"}),
        )
        .unwrap();
    a.api.submit_json(&spec).await.unwrap();
    a.api
        .wait_for(JOB, Duration::from_secs(60), "a first wave done", |s| {
            s.progress.completed >= 9 && s.progress.running > 0
        })
        .await
        .unwrap();

    let db = DbProbe::connect(pg.url()).await.unwrap();
    let before = db.statuses(JOB).await.unwrap();
    let running_before: Vec<&String> = before
        .iter()
        .filter(|(_, s)| *s == "running")
        .map(|(id, _)| id)
        .collect();
    let asked = Instant::now();
    a.service.terminate().unwrap();
    let exit = a.service.wait_exit(GRACE + EXIT_SLACK).await.unwrap();
    let exited_in = asked.elapsed();

    let after = db.statuses(JOB).await.unwrap();
    let counts_after = db.status_counts(JOB).await.unwrap();
    let handed_back = running_before
        .iter()
        .filter(|id| after.get(id.as_str()).map(String::as_str) == Some("pending"))
        .count();
    let lost: Vec<String> = running_before
        .iter()
        .filter(|id| {
            !matches!(
                after.get(id.as_str()).map(String::as_str),
                Some("pending" | "completed")
            )
        })
        .map(|id| format!("{id}: {:?}", after.get(id.as_str())))
        .collect();
    let job_row = db.job(JOB).await.unwrap();

    let b = fleet.runner(&runner("runner-b"), pg.url()).await.unwrap();
    let resumed = Instant::now();
    let state = b
        .api
        .wait_terminal(JOB, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", b.log_tail()));
    let finished_in = resumed.elapsed();
    let ledger = Ledger::read(&fleet, &b.api, JOB, &shape).await.unwrap();
    let answered = answers_per_cell(&job_prompts(JOB, &shape), &ledger.calls);
    let abandoned = ledger
        .calls
        .iter()
        .filter(|c| c.call.outcome == Outcome::CancelledByClient)
        .count();
    print_figures(
        "SIGTERM hand-back",
        &[
            ("executions", total.to_string()),
            ("running at SIGTERM", running_before.len().to_string()),
            ("exit after SIGTERM", format!("{exited_in:.2?} ({exit})")),
            ("handed back to pending", handed_back.to_string()),
            ("store after the exit", format!("{counts_after:?}")),
            (
                "lease owner after the exit",
                format!("{:?}", job_row.lease_owner),
            ),
            ("calls abandoned at the providers", abandoned.to_string()),
            ("provider calls", ledger.provider_calls.to_string()),
            (
                "second instance: ready to job terminal",
                format!("{finished_in:.2?}"),
            ),
            ("final status", format!("{:?}", ledger.statuses())),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert!(exit.success(), "a clean exit after SIGTERM: {exit}");
    assert!(
        exited_in <= GRACE + EXIT_SLACK,
        "exited within the grace: {exited_in:?}"
    );
    assert!(!running_before.is_empty(), "SIGTERM came mid-job");
    assert!(
        lost.is_empty(),
        "in-flight work handed back, not failed: {lost:?}"
    );
    assert!(handed_back > 0, "in-flight executions went back to pending");
    for bad in ["running", "retrying", "failed", "timeout", "cancelled"] {
        assert_eq!(
            counts_after.get(bad),
            None,
            "no {bad} execution after the exit"
        );
    }
    assert_eq!(job_row.lease_owner, None, "the lease was released");

    assert_eq!(state.status, "completed", "{:?}", state.progress);
    ledger.assert_all_completed(total);
    // Nothing ran twice to completion: one answer per cell at the providers.
    assert_eq!(answered.len() as u64, total, "every cell was answered");
    assert_eq!(ledger.answered_twice, 0, "cells answered twice");

    db.close().await;
    drop(b);
    fleet.shutdown().await;
    pg.cleanup().await;
}
