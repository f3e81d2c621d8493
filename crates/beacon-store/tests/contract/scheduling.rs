//! Claims and leases: one owner per job, expiry, release, concurrent claimers.

use std::time::Duration;

use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_store::{StartedAttempt, contract_test};

use crate::fixtures::*;

const LEASE: Duration = Duration::from_secs(30);

contract_test!(only_one_owner_claims_a_job, |store| {
    insert(&store, "job-a").await;
    let (a, b) = tokio::join!(
        store.claim_job("owner-a", LEASE, t0(), &[]),
        store.claim_job("owner-b", LEASE, t0(), &[])
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.is_some() != b.is_some(),
        "exactly one claim wins: {a:?} {b:?}"
    );
    let job = a.or(b).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.started_at, Some(t0()));
    assert_eq!(job.lease_expires_at, Some(t0() + secs(30)));
    assert!(
        store
            .claim_job("owner-c", LEASE, t0() + secs(29), &[])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.get_job("job-a").await.unwrap().unwrap(), job);
});

contract_test!(claims_take_the_oldest_job_first, |store| {
    insert_at(&store, "job-new", 10).await;
    insert_at(&store, "job-old", 0).await;
    assert_eq!(claim(&store, "o1").await.id, "job-old");
    assert_eq!(claim(&store, "o2").await.id, "job-new");
    assert!(
        store
            .claim_job("o3", LEASE, t0(), &[])
            .await
            .unwrap()
            .is_none()
    );
});

contract_test!(expired_lease_moves_to_another_owner, |store| {
    insert(&store, "job-a").await;
    store
        .claim_job("owner-a", LEASE, t0(), &[])
        .await
        .unwrap()
        .unwrap();
    let (e0, e1, e2) = (
        exec_id("job-a", 0),
        exec_id("job-a", 1),
        exec_id("job-a", 2),
    );
    assert_eq!(
        store
            .start_attempt(&e0, "owner-a", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        Some(1)
    );
    assert_eq!(
        store
            .start_attempt(&e1, "owner-a", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        Some(1)
    );
    assert!(
        store
            .finish_attempt(&failed(&e1, 1, ExecutionStatus::Retrying, t0()), "owner-a")
            .await
            .unwrap()
    );
    run_one(&store, "owner-a", completed(&e2, 0, t0())).await;

    // Renewed at t0+20 s: lease until t0+50 s.
    assert!(
        store
            .renew_lease("job-a", "owner-a", LEASE, t0() + secs(20))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_job("owner-b", LEASE, t0() + secs(40), &[])
            .await
            .unwrap()
            .is_none()
    );
    // owner-a dies; after expiry owner-b takes over and in-flight work is pending again.
    let job = store
        .claim_job("owner-b", LEASE, t0() + secs(51), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.lease_owner.as_deref(), job.status),
        (Some("owner-b"), JobStatus::Running)
    );
    assert_eq!(job.started_at, Some(t0()), "started_at kept");
    for id in [&e0, &e1] {
        let e = store.get_execution(id).await.unwrap().unwrap();
        assert_eq!(e.status, ExecutionStatus::Pending, "{id}");
        assert_eq!(e.next_attempt_at, None);
    }
    let e2row = store.get_execution(&e2).await.unwrap().unwrap();
    assert_eq!(
        e2row.status,
        ExecutionStatus::Completed,
        "terminal work stays"
    );
    let attempts = store.list_attempts(&e0).await.unwrap();
    assert_eq!(attempts[0].outcome.as_deref(), Some("interrupted"));
    assert_eq!(attempts[0].finished_at, Some(t0() + secs(51)));

    // The old owner is fenced everywhere.
    assert!(
        !store
            .renew_lease("job-a", "owner-a", LEASE, t0() + secs(52))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .start_attempt(&e0, "owner-a", t0() + secs(52))
            .await
            .unwrap()
            .map(|a| a.number),
        None
    );
    assert!(
        !store
            .finish_attempt(&completed(&e1, 1, t0() + secs(52)), "owner-a")
            .await
            .unwrap()
    );
    assert_eq!(
        store.requeue_unfinished("job-a", "owner-a").await.unwrap(),
        0
    );
    store.release_lease("job-a", "owner-a").await.unwrap();
    let job = store.get_job("job-a").await.unwrap().unwrap();
    assert_eq!(
        job.lease_owner.as_deref(),
        Some("owner-b"),
        "a non-owner cannot release"
    );
    // The new owner carries on; attempt numbers keep counting.
    assert!(
        store
            .renew_lease("job-a", "owner-b", LEASE, t0() + secs(60))
            .await
            .unwrap()
    );
    // Its first attempt re-sends the interrupted attempt's key: the router replays an
    // answer it already got for it instead of a provider being paid twice.
    assert_eq!(
        store
            .start_attempt(&e0, "owner-b", t0() + secs(60))
            .await
            .unwrap(),
        Some(StartedAttempt {
            number: 2,
            call_key: format!("{e0}:1")
        })
    );
});

contract_test!(released_lease_is_claimable_at_once, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner-a").await;
    store.release_lease("job-a", "owner-a").await.unwrap();
    let job = store.get_job("job-a").await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.lease_owner, job.lease_expires_at),
        (JobStatus::Running, None, None)
    );
    let job = store
        .claim_job("owner-b", LEASE, t0(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.lease_owner.as_deref(), Some("owner-b"));
    assert!(
        !store
            .renew_lease("job-a", "owner-a", LEASE, t0())
            .await
            .unwrap()
    );
});

contract_test!(concurrent_claimers_get_distinct_jobs, |store| {
    for i in 0..6 {
        insert_at(&store, &format!("job-{i}"), i).await;
    }
    let mut claims = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store
                .claim_job(&format!("owner-{i}"), LEASE, t0(), &[])
                .await
                .unwrap()
        }));
    }
    let mut got = Vec::new();
    for c in claims {
        if let Some(job) = c.await.unwrap() {
            got.push((job.id, job.lease_owner.unwrap()));
        }
    }
    got.sort();
    assert_eq!(
        got.len(),
        6,
        "every job claimed once, two claimers empty-handed: {got:?}"
    );
    got.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(got.len(), 6);
});

contract_test!(a_job_running_here_is_not_claimed_again, |store| {
    // The owner's lease ran out while the database was away; its own claim loop must
    // not start a second run of the job it is still running.
    insert(&store, "job-a").await;
    store
        .claim_job("owner-a", LEASE, t0(), &[])
        .await
        .unwrap()
        .unwrap();
    let later = t0() + secs(60);
    let running = vec!["job-a".to_string()];
    assert!(
        store
            .claim_job("owner-a", LEASE, later, &running)
            .await
            .unwrap()
            .is_none()
    );
    // Another instance (or this one after a restart) may take it over.
    let job = store
        .claim_job("owner-b", LEASE, later, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.lease_owner.as_deref(), Some("owner-b"));
});
