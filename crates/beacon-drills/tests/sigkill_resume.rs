//! Drill: a runner killed with SIGKILL mid-job, and a new instance on the same
//! PostgreSQL database. The job completes; no execution is lost or duplicated; what the
//! dead instance finished stays finished (its receipts), and the providers were paid for
//! at most the executions plus the calls in flight at the kill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use beacon_drills::{DbProbe, Fleet, Ledger, RunnerSettings, Shape, print_figures};
use serde_json::json;

const JOB: &str = "drill-sigkill";

fn runner(id: &str) -> RunnerSettings {
    // A short lease so the new instance may take the job over soon after the kill.
    RunnerSettings::fast(id)
        .scheduler("lease", "2s")
        .scheduler("heartbeat", "500ms")
        .scheduler("max_concurrency_per_job", 16)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_job_completes_on_a_new_instance() {
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    let fleet = Fleet::steady(11, 200).await.unwrap();
    let mut a = fleet.runner(&runner("runner-a"), pg.url()).await.unwrap();

    let shape = Shape::one_run(30);
    let total = shape.executions();
    fleet
        .submit_until(
            &a.api,
            JOB,
            &shape,
            json!({"timeout": "5m", "provider_timeout": "30s"}),
            total / 4,
        )
        .await
        .unwrap();

    let kill_wall = chrono::Utc::now();
    let status = a.service.kill().await.unwrap();
    let killed = Instant::now();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
    // The dead instance's state as it left it: nobody has touched the job since.
    let db = DbProbe::connect(pg.url()).await.unwrap();
    let at_kill = db.status_counts(JOB).await.unwrap();
    let n = |k: &str| at_kill.get(k).copied().unwrap_or(0);
    let (done_at_kill, in_flight_at_kill) = (n("completed"), n("running") + n("retrying"));

    let b = fleet.runner(&runner("runner-b"), pg.url()).await.unwrap();
    let state = b
        .api
        .wait_terminal(JOB, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", b.log_tail()));
    let resumed_in = killed.elapsed();
    let ledger = Ledger::read(&fleet, &b.api, JOB, &shape).await.unwrap();
    // Calls the providers were serving when the signal went out.
    let open_at_kill = ledger.open_at(kill_wall);
    let keys = db.receipt_keys(JOB).await.unwrap();
    let by_a = keys
        .values()
        .filter(|k| **k == a.settings.receipt_public_key())
        .count();
    let by_b = keys
        .values()
        .filter(|k| **k == b.settings.receipt_public_key())
        .count();
    print_figures(
        "SIGKILL resume",
        &[
            ("executions", total.to_string()),
            ("completed at the kill", done_at_kill.to_string()),
            (
                "in flight at the kill (running in the store)",
                in_flight_at_kill.to_string(),
            ),
            (
                "calls open at the providers at the kill",
                open_at_kill.to_string(),
            ),
            ("provider calls", ledger.provider_calls.to_string()),
            ("cells answered twice", ledger.answered_twice.to_string()),
            (
                "finished by the killed / new instance",
                format!("{by_a} / {by_b}"),
            ),
            ("new instance ready in", format!("{:.2?}", b.ready_in)),
            ("kill to job terminal", format!("{resumed_in:.2?}")),
            ("final status", format!("{:?}", ledger.statuses())),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert_eq!(state.status, "completed", "{:?}", state.progress);
    ledger.assert_all_completed(total);
    assert!(done_at_kill > 0 && done_at_kill < total, "killed mid-job");
    assert!(
        ledger.provider_calls as u64 <= total + in_flight_at_kill,
        "provider calls {} <= executions {total} + in flight at the kill {in_flight_at_kill}",
        ledger.provider_calls
    );
    assert!(ledger.answered_twice as u64 <= in_flight_at_kill);
    // What the killed instance finished was kept, never redone; the rest is the new one's.
    assert_eq!(
        by_a as u64, done_at_kill,
        "the dead instance's answers are kept"
    );
    assert_eq!((by_a + by_b) as u64, total, "every execution has a receipt");

    db.close().await;
    drop(b);
    fleet.shutdown().await;
    pg.cleanup().await;
}
