//! Drill: the runner's SQLite file cannot grow mid-job (a file-size limit on the runner
//! process, `prlimit --fsize`, which is what a full disk looks like to SQLite), then
//! can again. Health is not `healthy` while writes fail; the job resumes by itself when
//! the limit is lifted and completes; no answer is bought twice (answers served while
//! the disk was full are held, then stored).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use beacon_drills::procs::Scratch;
use beacon_drills::{Fleet, Ledger, RunnerSettings, Shape, print_figures};
use serde_json::json;

const JOB: &str = "drill-disk-full";

/// Sets the file-size limit (soft:hard) of process `pid` with util-linux `prlimit`.
/// The hard limit stays unlimited so lifting it needs no privilege.
fn set_fsize(pid: u32, soft: &str) {
    let out = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_the_job_and_it_resumes_when_space_is_back() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "prlimit (util-linux) is missing; CI needs it for this drill"
        );
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let began = Instant::now();
    let scratch = Scratch::new("beacon-drill-sqlite").unwrap();
    let db_url = format!("sqlite://{}", scratch.path().join("runner.db").display());
    let fleet = Fleet::steady(31, 150).await.unwrap();
    let settings = RunnerSettings::fast("runner-sqlite").scheduler("max_concurrency_per_job", 16);
    let runner = fleet.runner(&settings, &db_url).await.unwrap();
    let shape = Shape::one_run(30);
    let total = shape.executions();
    let before = fleet
        .submit_until(
            &runner.api,
            JOB,
            &shape,
            json!({"timeout": "10m", "provider_timeout": "30s"}),
            total / 4,
        )
        .await
        .unwrap();

    // Below every file's current size: no SQLite file (database, WAL) can be written
    // past 4 KiB, so every write transaction fails, as on a full disk.
    set_fsize(runner.pid(), "4096");
    let full = Instant::now();
    let mut unhealthy = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while unhealthy.is_none() && Instant::now() < deadline {
        let h = runner.api.health().await.unwrap();
        if h.status != "healthy" {
            unhealthy = Some(h);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let unhealthy = unhealthy.expect("health says not healthy while writes fail");
    let noticed_in = full.elapsed();
    // `failing` (writes refused, reads fine) or `down` (SQLite cannot even grow its
    // shared-memory index for a read): either way not healthy, and it says why.
    let db_status = unhealthy.database.clone();
    assert!(
        db_status == "failing" || db_status == "down",
        "{:?}",
        unhealthy.json
    );
    assert_eq!(unhealthy.status, "unhealthy", "{:?}", unhealthy.json);
    // Let it stay full a while: writes keep failing, nothing is lost meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Reads may fail too while the disk is full (SQLite's shared-memory index).
    let during = runner.api.job(JOB).await.ok();
    let still = runner.api.health().await.unwrap();
    assert_ne!(still.status, "healthy", "{:?}", still.json);
    let error = still.json["services"][0]["writes_failing"]["error"].clone();

    set_fsize(runner.pid(), "unlimited");
    let lifted = Instant::now();
    let state = runner
        .api
        .wait_terminal(JOB, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", runner.log_tail()));
    let resumed_in = lifted.elapsed();
    let ledger = Ledger::read(&fleet, &runner.api, JOB, &shape)
        .await
        .unwrap();
    let health = runner.api.health().await.unwrap();

    print_figures(
        "SQLite disk full",
        &[
            ("executions", total.to_string()),
            (
                "completed when the disk filled",
                before.progress.completed.to_string(),
            ),
            (
                "completed while full (3 s)",
                during.map_or("(reads failed too)".into(), |d| {
                    d.progress.completed.to_string()
                }),
            ),
            ("database status while full", db_status),
            ("health not healthy after", format!("{noticed_in:.2?}")),
            ("the error it showed", error.to_string()),
            ("lifted to job terminal", format!("{resumed_in:.2?}")),
            ("provider calls", ledger.provider_calls.to_string()),
            ("cells answered twice", ledger.answered_twice.to_string()),
            ("final status", format!("{:?}", ledger.statuses())),
            ("health afterwards", health.status.clone()),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert_eq!(state.status, "completed", "{:?}", state.progress);
    ledger.assert_all_completed(total);

    assert_eq!(
        ledger.provider_calls as u64, total,
        "no answer bought twice"
    );
    assert_eq!(ledger.answered_twice, 0);
    assert_eq!(health.status, "healthy", "{:?}", health.json);
    // Seconds, not minutes: a pool left with connections that still believe they are
    // inside a transaction recovers only as they age out (about 90 s here).
    assert!(
        resumed_in < Duration::from_secs(30),
        "resumed {resumed_in:?} after the limit was lifted"
    );
    drop(runner);
    fleet.shutdown().await;
    drop(scratch);
}
