//! Drill: PostgreSQL goes away mid-job — a clean stop for 10 s, then a crash
//! (`pg_ctl stop -m immediate`) for 60 s — on a private cluster of the drill's own
//! (never the shared server). The runner keeps every answer served meanwhile and
//! stores it once the database is back; the job completes; no answer is bought twice;
//! `/api/v1/health` says `unhealthy` while the database is away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use beacon_drills::audit::is_answer;
use beacon_drills::{Fleet, Ledger, PrivateCluster, RunnerSettings, Shape, print_figures};
use serde_json::json;

/// How the database goes away.
#[derive(Clone, Copy, Debug)]
enum Away {
    Stop,
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_away_10s_then_60s_loses_and_rebuys_nothing() {
    let Some(mut pg) = PrivateCluster::start().await.unwrap() else {
        return;
    };
    let fleet = Fleet::steady(23, 200).await.unwrap();
    // A short lease, so the outages outlast it: the runner must not take its own
    // unrenewed lease for a lost one, and must not start new calls while it is in doubt.
    let settings = RunnerSettings::fast("runner-pg")
        .scheduler("lease", "3s")
        .scheduler("heartbeat", "1s")
        .scheduler("max_concurrency_per_job", 16);
    let runner = fleet.runner(&settings, &pg.url()).await.unwrap();
    for (job, away, seconds) in [
        ("drill-pg-stop", Away::Stop, 10),
        ("drill-pg-crash", Away::Crash, 60),
    ] {
        outage(&fleet, &runner, &mut pg, job, away, seconds).await;
    }
    drop(runner);
    fleet.shutdown().await;
}

async fn outage(
    fleet: &Fleet,
    runner: &beacon_drills::fleet::RunnerChild,
    pg: &mut PrivateCluster,
    job: &str,
    away: Away,
    seconds: u64,
) {
    let began = Instant::now();
    let shape = Shape::one_run(30);
    let total = shape.executions();
    let before = fleet
        .submit_until(
            &runner.api,
            job,
            &shape,
            json!({"timeout": "10m", "provider_timeout": "30s"}),
            total / 4,
        )
        .await
        .unwrap();

    let down_at = chrono::Utc::now();
    match away {
        Away::Stop => pg.stop().unwrap(),
        Away::Crash => pg.crash().unwrap(),
    }
    let down = Instant::now();
    // Health tells the truth while the database is away (it answers within its own
    // 2 s bound on the ping).
    let health = runner.api.health().await.unwrap();
    assert_eq!(health.status, "unhealthy", "{:?}", health.json);
    assert_eq!(health.database, "down", "{:?}", health.json);
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(down.elapsed())).await;
    let open_at_restart = fleet.sims.open_calls();
    let away_for = down.elapsed();
    pg.start_again().await.unwrap();
    let up_at = chrono::Utc::now();
    let restarted = Instant::now();

    let state = runner
        .api
        .wait_terminal(job, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", runner.log_tail()));
    let resumed_in = restarted.elapsed();
    let ledger = Ledger::read(fleet, &runner.api, job, &shape).await.unwrap();
    let health = runner.api.health().await.unwrap();
    // Answers the providers served while the database was away: each one had to be
    // held and written later, or it would have been bought again.
    let served_while_down = ledger
        .calls
        .iter()
        .filter(|c| {
            is_answer(c.call.outcome) && c.call.ended_at.is_some_and(|t| t >= down_at && t <= up_at)
        })
        .count();
    print_figures(
        &format!("PostgreSQL {away:?} for {seconds} s"),
        &[
            ("executions", total.to_string()),
            (
                "completed when it went away",
                before.progress.completed.to_string(),
            ),
            (
                "answers served while it was away",
                served_while_down.to_string(),
            ),
            ("calls open when it came back", open_at_restart.to_string()),
            ("away for", format!("{away_for:.1?}")),
            ("back to job terminal", format!("{resumed_in:.2?}")),
            ("provider calls", ledger.provider_calls.to_string()),
            ("cells answered twice", ledger.answered_twice.to_string()),
            ("final status", format!("{:?}", ledger.statuses())),
            ("health afterwards", health.status.clone()),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert_eq!(state.status, "completed", "{:?}", state.progress);
    ledger.assert_all_completed(total);
    assert!(served_while_down > 0, "the outage caught answers in flight");
    // No faults: every cell was bought exactly once, the outage notwithstanding.
    assert_eq!(
        ledger.provider_calls as u64, total,
        "no answer bought twice"
    );
    assert_eq!(ledger.answered_twice, 0);
    assert_eq!(health.status, "healthy", "{:?}", health.json);
}
