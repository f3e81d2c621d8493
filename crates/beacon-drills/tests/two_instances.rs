//! Drill: two runner instances on one PostgreSQL database. First, several jobs
//! submitted through both: each job runs on one instance, and every cell is called
//! exactly once at the providers. Then one instance is killed (SIGKILL) while it holds a
//! job: the other takes that job over only after its lease has expired, and finishes it;
//! no cell is completed twice, and the providers were paid for at most the executions
//! plus the calls in flight at the kill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use beacon_drills::audit::{calls_by_cell, duplicate_cells, read_executions};
use beacon_drills::fleet::job_prompts;
use beacon_drills::{DbProbe, Fleet, RunnerChild, RunnerSettings, Shape, print_figures};
use serde_json::json;

const LEASE: &str = "2s";

/// Two jobs at a time per instance: the survivor has room to take a dead instance's
/// job over as soon as the lease allows, while it runs its own.
fn runner(id: &str) -> RunnerSettings {
    RunnerSettings::fast(id)
        .scheduler("lease", LEASE)
        .scheduler("heartbeat", "500ms")
        .scheduler("max_jobs", 2)
        .scheduler("max_concurrency_per_job", 8)
}

/// What a finished job is checked on.
struct Finished {
    executions: usize,
    duplicates: Vec<String>,
    all_completed: bool,
    calls_per_cell: Vec<usize>,
    signers: BTreeSet<String>,
}

async fn finished(
    id: &str,
    shape: &Shape,
    via: &RunnerChild,
    fleet: &Fleet,
    db: &DbProbe,
) -> Finished {
    let state = via
        .api
        .wait_terminal(id, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", via.log_tail()));
    assert_eq!(state.status, "completed", "{id}: {:?}", state.progress);
    let execs = read_executions(&via.api.executions(id).await.unwrap()).unwrap();
    let calls = fleet.sims.live_calls();
    let by_cell = calls_by_cell(&job_prompts(id, shape), &calls);
    Finished {
        executions: execs.len(),
        duplicates: duplicate_cells(&execs),
        all_completed: execs.iter().all(|e| e.status == "completed"),
        calls_per_cell: by_cell.values().map(Vec::len).collect(),
        signers: db.receipt_keys(id).await.unwrap().into_values().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_each_cell_once_and_take_over_a_dead_ones_job() {
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    let fleet = Fleet::steady(31, 100).await.unwrap();
    let mut runners = vec![
        fleet.runner(&runner("runner-a"), pg.url()).await.unwrap(),
        fleet.runner(&runner("runner-b"), pg.url()).await.unwrap(),
    ];
    let keys: Vec<String> = runners
        .iter()
        .map(|r| r.settings.receipt_public_key())
        .collect();
    let db = DbProbe::connect(pg.url()).await.unwrap();

    // Phase 1: four jobs submitted through both instances; nobody dies.
    let phase1 = Instant::now();
    let small = Shape::one_run(10);
    let ids: Vec<String> = (1..=4).map(|i| format!("drill-pair-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let spec = fleet.spec(id, &small, json!({"timeout": "5m"})).unwrap();
        runners[i % 2].api.submit_json(&spec).await.unwrap();
    }
    let mut ran_on = Vec::new();
    for id in &ids {
        let f = finished(id, &small, &runners[0], &fleet, &db).await;
        assert_eq!(f.executions as u64, small.executions(), "{id}");
        assert!(f.duplicates.is_empty(), "{id}: {:?}", f.duplicates);
        assert!(f.all_completed, "{id}");
        assert_eq!(
            f.calls_per_cell.len() as u64,
            small.executions(),
            "{id}: every cell called"
        );
        assert!(
            f.calls_per_cell.iter().all(|n| *n == 1),
            "{id}: every cell called exactly once: {:?}",
            f.calls_per_cell
        );
        assert_eq!(f.signers.len(), 1, "{id} ran on one instance");
        let on = keys.iter().position(|k| f.signers.contains(k)).unwrap();
        ran_on.push(runners[on].instance_id().to_string());
    }
    assert!(
        ran_on.iter().any(|r| r == "runner-a") && ran_on.iter().any(|r| r == "runner-b"),
        "both instances ran jobs: {ran_on:?}"
    );

    let phase1 = phase1.elapsed();

    // Phase 2: two bigger jobs; the instance that holds the first is killed mid-way.
    let phase2 = Instant::now();
    let big = Shape::one_run(20);
    let jobs = ["drill-pair-5", "drill-pair-6"];
    for (i, id) in jobs.iter().enumerate() {
        let spec = fleet.spec(id, &big, json!({"timeout": "5m"})).unwrap();
        runners[i].api.submit_json(&spec).await.unwrap();
    }
    for id in jobs {
        runners[0]
            .api
            .wait_for(id, Duration::from_secs(30), "a start", |s| {
                s.status == "running"
            })
            .await
            .unwrap();
    }
    runners[0]
        .api
        .wait_for(jobs[0], Duration::from_secs(60), "a sixth done", |s| {
            s.progress.completed >= big.executions() / 6
        })
        .await
        .unwrap();
    let owner = db.job(jobs[0]).await.unwrap().lease_owner.unwrap();
    let v = runners
        .iter()
        .position(|r| r.instance_id() == owner)
        .unwrap();
    let mut victim = runners.remove(v);
    let survivor = runners.remove(0);
    let kill_wall = chrono::Utc::now();
    victim.service.kill().await.unwrap();
    // The dead instance's jobs as it left them.
    let mut killed = Vec::new();
    for id in jobs {
        let row = db.job(id).await.unwrap();
        if row.lease_owner.as_deref() == Some(owner.as_str()) {
            let at_kill = db.status_counts(id).await.unwrap();
            let n = |k: &str| at_kill.get(k).copied().unwrap_or(0);
            killed.push((
                id,
                n("completed"),
                n("running") + n("retrying"),
                row.lease_expires_at.unwrap(),
            ));
        }
    }
    let (vkey, skey) = (
        victim.settings.receipt_public_key(),
        survivor.settings.receipt_public_key(),
    );
    let mut rows = vec![
        (
            "phase 1 jobs x executions",
            format!("4 x {}", small.executions()),
        ),
        ("phase 1 jobs ran on", format!("{ran_on:?}")),
        ("phase 1 time", format!("{phase1:.1?}")),
        (
            "phase 2 jobs x executions",
            format!("2 x {}", big.executions()),
        ),
        (
            "killed instance",
            format!("{owner}, holding {} job(s)", killed.len()),
        ),
    ];
    let mut checks = Vec::new();
    for id in jobs {
        let f = finished(id, &big, &survivor, &fleet, &db).await;
        assert_eq!(
            f.executions as u64,
            big.executions(),
            "{id}: nothing lost or added"
        );
        assert!(f.duplicates.is_empty(), "{id}: {:?}", f.duplicates);
        assert!(f.all_completed, "{id}");
        checks.push((id, f));
    }
    fleet
        .sims
        .wait_quiet(Duration::from_secs(15))
        .await
        .unwrap();
    let calls = fleet.sims.live_calls();
    for (id, f) in &checks {
        let provider_calls: usize = f.calls_per_cell.iter().sum();
        let Some((_, done, in_flight, expires)) = killed.iter().find(|k| k.0 == *id) else {
            rows.push((
                "survivor's job: provider calls",
                format!("{id}: {provider_calls}"),
            ));
            assert!(
                f.calls_per_cell.iter().all(|n| *n == 1),
                "{id} never ran on the dead instance: every cell called once"
            );
            assert_eq!(f.signers, BTreeSet::from([skey.clone()]), "{id}");
            continue;
        };
        let prompts = job_prompts(id, &big);
        let takeover = calls
            .iter()
            .filter(|c| {
                prompts.contains_key(&c.call.prompt_sha256) && c.call.started_at > kill_wall
            })
            .map(|c| c.call.started_at)
            .min()
            .unwrap();
        let receipts = db.receipt_keys(id).await.unwrap();
        let by_victim = receipts.values().filter(|k| **k == vkey).count() as u64;
        let by_survivor = receipts.values().filter(|k| **k == skey).count() as u64;
        let twice = db
            .answered_attempts(id)
            .await
            .unwrap()
            .values()
            .filter(|n| **n > 1)
            .count();
        let ms = |d: chrono::TimeDelta| format!("{} ms", d.num_milliseconds());
        rows.extend([
            ("killed job", id.to_string()),
            (
                "  completed / in flight at the kill",
                format!("{done} / {in_flight}"),
            ),
            ("  lease expiry after the kill", ms(*expires - kill_wall)),
            (
                "  survivor's first call after the kill",
                ms(takeover - kill_wall),
            ),
            ("  provider calls", provider_calls.to_string()),
            (
                "  finished by the dead / the survivor",
                format!("{by_victim} / {by_survivor}"),
            ),
            ("  executions completed twice", twice.to_string()),
        ]);
        assert!(
            *done > 0 && *done < big.executions(),
            "{id}: killed mid-job"
        );
        assert!(
            takeover >= *expires,
            "{id}: taken over only after the lease expired ({takeover} < {expires})"
        );
        assert!(
            provider_calls as u64 <= big.executions() + in_flight,
            "{id}: provider calls {provider_calls} <= executions + in flight at the kill {in_flight}"
        );
        assert_eq!(twice, 0, "{id}: no execution completed twice");
        assert_eq!(
            by_victim, *done,
            "{id}: what the dead instance finished is kept"
        );
        assert_eq!(by_victim + by_survivor, big.executions(), "{id}");
    }
    rows.push(("phase 2 time", format!("{:.1?}", phase2.elapsed())));
    rows.push(("drill time", format!("{:.1?}", began.elapsed())));
    print_figures("two instances", &rows);
    assert!(!killed.is_empty(), "the killed instance held a job");

    db.close().await;
    drop(survivor);
    fleet.shutdown().await;
    pg.cleanup().await;
}
