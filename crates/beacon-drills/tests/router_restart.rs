//! Drill: the router killed (SIGKILL) or stopped (SIGTERM) mid-job and started again on
//! the same port a few seconds later. While it is gone the runner's health says
//! `degraded` (router `down`) and its breaker opens; executions wait instead of
//! failing; once the router is back the breaker closes by itself, the job completes
//! with every execution `completed`, and nothing was bought twice beyond the calls in
//! flight when the router went away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use beacon_drills::{DbProbe, Fleet, Health, Ledger, RunnerSettings, Shape, print_figures};
use serde_json::json;

/// How long the router stays away: long enough for the breaker to open, for trials to
/// fail and the open period to double up to its cap.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// How often the drill looks at the runner's health and the job.
const POLL: Duration = Duration::from_millis(50);

/// The two drills share the machine's two cores and time their phases: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

fn runner() -> RunnerSettings {
    // A small threshold and short open periods so the breaker opens, and recovers,
    // within the drill's few seconds of router downtime.
    RunnerSettings::fast("runner-a")
        .scheduler("max_concurrency_per_job", 16)
        .breaker("failure_threshold", 3)
        .breaker("open_for", "300ms")
        .breaker("max_open_for", "1500ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_killed_with_sigkill_mid_job() {
    drill(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_stopped_with_sigterm_mid_job() {
    drill(Stop::Term).await;
}

async fn drill(stop: Stop) {
    let _one_at_a_time = SERIAL.lock().await;
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    let mut fleet = Fleet::steady(23, 200).await.unwrap();
    let a = fleet.runner(&runner(), pg.url()).await.unwrap();
    let before = a.api.health().await.unwrap();
    assert_eq!(
        (before.status.as_str(), before.breaker.as_str()),
        ("healthy", "closed"),
        "{before:?}"
    );

    let (name, job) = match stop {
        Stop::Kill => ("router SIGKILL + restart", "drill-router-kill"),
        Stop::Term => ("router SIGTERM + restart", "drill-router-term"),
    };
    let shape = Shape::one_run(30);
    let total = shape.executions();
    fleet
        .submit_until(
            &a.api,
            job,
            &shape,
            json!({"timeout": "5m", "provider_timeout": "30s"}),
            total / 3,
        )
        .await
        .unwrap();

    // Stop the router. The store's counts right after the signal: every execution with
    // a call at the router then is `running` (or `retrying` once its call broke) until
    // the router is back, so they bound what may be bought twice.
    let db = DbProbe::connect(pg.url()).await.unwrap();
    let stop_wall = chrono::Utc::now();
    let signalled = Instant::now();
    match stop {
        Stop::Kill => {
            let status = fleet.router.kill().await.unwrap();
            assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
        }
        Stop::Term => fleet.router.terminate().unwrap(),
    }
    let at_stop = db.status_counts(job).await.unwrap();
    let n = |k: &str| at_stop.get(k).copied().unwrap_or(0);
    let (done_at_stop, in_flight_at_stop) = (n("completed"), n("running") + n("retrying"));
    if stop == Stop::Term {
        // Graceful: the calls it was serving finish, then it exits 0.
        let status = fleet
            .router
            .wait_exit(Duration::from_secs(15))
            .await
            .unwrap();
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0: {status}");
    }
    let exited_in = signalled.elapsed();

    // While it is gone: the runner's health, every POLL.
    let gone = Instant::now();
    let mut samples: Vec<Health> = Vec::new();
    while gone.elapsed() < DOWN_FOR {
        samples.push(a.api.health().await.unwrap());
        tokio::time::sleep(POLL).await;
    }
    let progress_while_down = a.api.job(job).await.unwrap().progress;
    fleet.restart_router().await.unwrap();
    let restarted = Instant::now();
    let down_for = gone.elapsed();

    // Back: the breaker's first `closed`, and the job's end.
    let mut closed_after = None;
    let state = loop {
        let h = a.api.health().await.unwrap();
        if closed_after.is_none() && h.breaker == "closed" {
            closed_after = Some(restarted.elapsed());
        }
        let state = a.api.job(job).await.unwrap();
        if state.is_terminal() {
            break state;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(90),
            "job {job} not terminal 90 s after the restart: {:?}{}",
            state.progress,
            a.log_tail()
        );
        tokio::time::sleep(POLL).await;
    };
    let terminal_after = restarted.elapsed();
    let after = a.api.health().await.unwrap();
    let ledger = Ledger::read(&fleet, &a.api, job, &shape).await.unwrap();
    let open_at_stop = ledger.open_at(stop_wall);
    let not_down: Vec<&Health> = samples
        .iter()
        .filter(|h| h.status != "degraded" || h.router != "down")
        .collect();
    let open_samples = samples.iter().filter(|h| h.breaker == "open").count();
    let max_attempts = ledger.execs.iter().map(|e| e.attempts).max().unwrap_or(0);
    print_figures(
        name,
        &[
            ("executions", total.to_string()),
            ("completed at the stop", done_at_stop.to_string()),
            (
                "running at the stop (in the store)",
                in_flight_at_stop.to_string(),
            ),
            (
                "calls open at the providers at the stop",
                open_at_stop.to_string(),
            ),
            ("signal to router exit", format!("{exited_in:.2?}")),
            ("router down for", format!("{down_for:.2?}")),
            (
                "health samples while down (degraded/down, breaker open)",
                format!(
                    "{} ({} / {open_samples})",
                    samples.len(),
                    samples.len() - not_down.len()
                ),
            ),
            (
                "completed when the router came back",
                progress_while_down.completed.to_string(),
            ),
            (
                "restart to breaker closed",
                closed_after.map_or("never seen".into(), |d| format!("{d:.2?}")),
            ),
            ("restart to job terminal", format!("{terminal_after:.2?}")),
            ("provider calls", ledger.provider_calls.to_string()),
            ("cells answered twice", ledger.answered_twice.to_string()),
            ("most attempts of one execution", max_attempts.to_string()),
            ("final status", format!("{:?}", ledger.statuses())),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert!(
        done_at_stop > 0 && done_at_stop < total,
        "stopped mid-job: {done_at_stop} of {total} completed"
    );
    assert!(samples.len() >= 10, "health read while the router was down");
    assert!(
        not_down.is_empty(),
        "health says degraded with the router down while it is gone: {not_down:?}"
    );
    assert!(
        open_samples > 0,
        "the breaker opened while the router was gone: {samples:?}"
    );
    assert_eq!(
        progress_while_down.failed + progress_while_down.timeout + progress_while_down.cancelled,
        0,
        "nothing failed while the router was gone: {progress_while_down:?}"
    );
    assert_eq!(state.status, "completed", "{:?}", state.progress);
    ledger.assert_all_completed(total);
    assert!(
        closed_after.is_some(),
        "the breaker closed by itself after the restart"
    );
    assert_eq!(
        (
            after.status.as_str(),
            after.router.as_str(),
            after.breaker.as_str()
        ),
        ("healthy", "healthy", "closed"),
        "healthy again after the job"
    );
    assert!(
        ledger.provider_calls as u64 <= total + in_flight_at_stop,
        "provider calls {} <= executions {total} + running at the stop {in_flight_at_stop}",
        ledger.provider_calls
    );
    assert!(ledger.answered_twice as u64 <= in_flight_at_stop);
    if stop == Stop::Term {
        // A graceful stop finishes the calls it serves and hands their answers over.
        assert_eq!(ledger.answered_twice, 0, "SIGTERM: no cell answered twice");
    }

    db.close().await;
    drop(a);
    fleet.shutdown().await;
    pg.cleanup().await;
}
