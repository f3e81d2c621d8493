//! Accepting jobs: one transaction, idempotent replays, id conflicts, nonces, cells.

use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_store::{ExecutionFilter, Inserted, JobFilter, StoreError, Totals, contract_test};

use crate::fixtures::*;

contract_test!(insert_stores_job_and_every_execution, |store| {
    let j = job("job-a");
    let created = match store.insert_job(&j, &cells27("job-a")).await.unwrap() {
        Inserted::Created(r) => r,
        other => panic!("expected Created, got {other:?}"),
    };
    assert_eq!(created.status, JobStatus::Queued);
    assert_eq!(created.spec_json, j.spec_json, "spec kept verbatim");
    assert_eq!(created.plan_json, j.plan_json);
    assert_eq!(created.created_at, t0());
    assert_eq!((created.total, created.min_success_rate), (27, 0.67));
    assert_eq!(created.lease_owner, None);
    assert_eq!(store.get_job("job-a").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_job("nope").await.unwrap(), None);

    let counts = store.counts("job-a").await.unwrap();
    assert_eq!((counts.pending, counts.total()), (27, 27));
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 1,
            executions: 27,
            nonces: 1
        }
    );

    let page = store
        .list_executions(&ExecutionFilter {
            job_id: Some("job-a".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 27);
    let e = &page.items[0];
    assert_eq!(
        (e.seq, e.status, e.attempt_count),
        (0, ExecutionStatus::Pending, 0)
    );
    assert_eq!(
        (
            e.question_id.as_str(),
            e.model_id.as_str(),
            e.region.as_str()
        ),
        ("q0", "m0", "us-east")
    );
    assert_eq!((e.created_at, e.updated_at), (t0(), t0()));
    assert!(e.response.is_none() && e.failure.is_none() && e.started_at.is_none());
    assert_eq!(store.get_execution(&e.id).await.unwrap().as_ref(), Some(e));
    let seqs: Vec<u32> = page.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..27).collect::<Vec<_>>());
    assert!(store.ping().await.is_ok());
});

contract_test!(duplicate_cells_are_impossible, |store| {
    let mut cells = cells27("job-a");
    // Same (question, model, region, run) under a new id and seq.
    let mut dup = cells[5].clone();
    dup.id = "job-a-dup".into();
    dup.seq = 99;
    cells.push(dup);
    let err = store.insert_job(&job("job-a"), &cells).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    // The whole transaction is gone: job, nonce and the 27 other executions.
    assert_eq!(store.totals().await.unwrap(), Totals::default());
    assert_eq!(store.get_job("job-a").await.unwrap(), None);
});

contract_test!(same_id_and_body_is_an_idempotent_replay, |store| {
    let first = insert(&store, "job-a").await;
    // A resubmission of the same body (the nonce is the same body's nonce; even a
    // different one must not matter: replays are answered before the nonce check).
    let mut again = job("job-a");
    again.nonce = Some("another-nonce".into());
    match store.insert_job(&again, &cells27("job-a")).await.unwrap() {
        Inserted::Existing(r) => assert_eq!(r, first),
        other => panic!("expected Existing, got {other:?}"),
    }
    match store
        .insert_job(&job("job-a"), &cells27("job-a"))
        .await
        .unwrap()
    {
        Inserted::Existing(r) => assert_eq!(r.id, "job-a"),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 1,
            executions: 27,
            nonces: 1
        }
    );
});

contract_test!(same_idempotency_key_is_an_idempotent_replay, |store| {
    let mut a = job("job-a");
    a.idempotency_key = Some("idem-1".into());
    store.insert_job(&a, &cells27("job-a")).await.unwrap();
    // Another id and body, same key: the first job is the answer.
    let mut b = job("job-b");
    b.idempotency_key = Some("idem-1".into());
    match store.insert_job(&b, &cells27("job-b")).await.unwrap() {
        Inserted::Existing(r) => assert_eq!(r.id, "job-a"),
        other => panic!("expected Existing, got {other:?}"),
    }
    let found = store
        .find_job_by_idempotency_key("idem-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.idempotency_key.as_deref()),
        ("job-a", Some("idem-1"))
    );
    assert_eq!(
        store.find_job_by_idempotency_key("idem-2").await.unwrap(),
        None
    );
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 1,
            executions: 27,
            nonces: 1
        }
    );
});

contract_test!(same_id_other_body_conflicts, |store| {
    insert(&store, "job-a").await;
    let mut other = job("job-a");
    other.spec_sha256 = "different".into();
    other.nonce = Some("fresh".into());
    let err = store
        .insert_job(&other, &cells27("job-a"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::JobIdConflict(id) if id == "job-a"),
        "{err:?}"
    );
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 1,
            executions: 27,
            nonces: 1
        }
    );
});

contract_test!(replayed_nonce_writes_nothing, |store| {
    insert(&store, "job-a").await;
    let before = store.totals().await.unwrap();
    let mut b = job("job-b");
    b.nonce = Some("nonce-job-a".into());
    let err = store.insert_job(&b, &cells27("job-b")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::ReplayedNonce(n) if n == "nonce-job-a"),
        "{err:?}"
    );
    assert_eq!(store.totals().await.unwrap(), before);
    assert_eq!(store.get_job("job-b").await.unwrap(), None);
    // Without a nonce the same job goes in.
    b.nonce = None;
    assert!(matches!(
        store.insert_job(&b, &cells27("job-b")).await.unwrap(),
        Inserted::Created(_)
    ));
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 2,
            executions: 54,
            nonces: 1
        }
    );
});

contract_test!(concurrent_identical_submissions_create_once, |store| {
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut j = job("job-a");
            j.idempotency_key = Some("idem-race".into());
            store.insert_job(&j, &cells27("job-a")).await
        }));
    }
    let (mut created, mut existing) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(Inserted::Created(_)) => created += 1,
            Ok(Inserted::Existing(r)) => {
                assert_eq!(r.id, "job-a");
                existing += 1
            }
            Err(e) => panic!("identical submission failed: {e}"),
        }
    }
    assert_eq!((created, existing), (1, 5));
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            jobs: 1,
            executions: 27,
            nonces: 1
        }
    );
});

contract_test!(list_jobs_newest_first_with_filter_and_pages, |store| {
    for (i, id) in ["job-a", "job-b", "job-c"].iter().enumerate() {
        insert_at(&store, id, i as i64).await;
    }
    let all = store
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["job-c", "job-b", "job-a"]);
    let page = store
        .list_jobs(&JobFilter {
            limit: 1,
            offset: 1,
            status: None,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "job-b");
    claim(&store, "owner-1").await; // job-a, the oldest
    let running = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        running.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["job-a"]
    );
    let queued = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Queued),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
    // A limit of 0 is taken literally.
    assert!(
        store
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
});
