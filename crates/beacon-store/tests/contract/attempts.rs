//! Attempts: numbering and call keys, fencing by the lease, pending work in order, the
//! shutdown hand-back, ending without an attempt, concurrent attempts.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::status::{Classification, ExecutionStatus, JobStatus};
use beacon_store::{StartedAttempt, contract_test};

use crate::fixtures::*;

const LEASE: Duration = Duration::from_secs(30);

contract_test!(attempts_are_numbered_and_recorded, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    let e = exec_id("job-a", 4);
    let t1 = t0() + secs(1);
    assert_eq!(
        store
            .start_attempt(&e, "owner", t1)
            .await
            .unwrap()
            .map(|a| a.number),
        Some(1)
    );
    let running = store.get_execution(&e).await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.attempt_count, running.started_at),
        (ExecutionStatus::Running, 1, Some(t1))
    );
    // Starting again while running is fenced (only pending/retrying start).
    assert_eq!(
        store
            .start_attempt(&e, "owner", t1)
            .await
            .unwrap()
            .map(|a| a.number),
        None
    );

    let t2 = t0() + secs(2);
    assert!(
        store
            .finish_attempt(&failed(&e, 1, ExecutionStatus::Retrying, t2), "owner")
            .await
            .unwrap()
    );
    let retrying = store.get_execution(&e).await.unwrap().unwrap();
    assert_eq!(retrying.status, ExecutionStatus::Retrying);
    assert_eq!(retrying.next_attempt_at, Some(t2 + secs(2)));
    assert_eq!(retrying.failure, Some(provider_failure()));
    assert!(retrying.response.is_none() && retrying.response_sha256.is_none());
    assert!(
        retrying.classification.is_none()
            && retrying.output.is_none()
            && retrying.receipt.is_none()
    );
    assert_eq!(retrying.completed_at, None);

    let t3 = t0() + secs(5);
    // After an attempt that ended (here: failed, waiting to retry), a new key.
    assert_eq!(
        store.start_attempt(&e, "owner", t3).await.unwrap(),
        Some(StartedAttempt {
            number: 2,
            call_key: format!("{e}:2")
        })
    );
    let keys: Vec<Option<String>> = store
        .list_attempts(&e)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.call_key)
        .collect();
    assert_eq!(keys, [Some(format!("{e}:1")), Some(format!("{e}:2"))]);
    let again = store.get_execution(&e).await.unwrap().unwrap();
    assert_eq!(
        (again.started_at, again.next_attempt_at),
        (Some(t1), None),
        "first start kept"
    );
    let t4 = t0() + secs(6);
    assert!(
        store
            .finish_attempt(&completed(&e, 2, t4), "owner")
            .await
            .unwrap()
    );
    let done = store.get_execution(&e).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.attempt_count),
        (ExecutionStatus::Completed, 2)
    );
    assert_eq!(done.response.as_deref(), Some("The answer."));
    assert_eq!(done.classification, Some(Classification::Substantive));
    assert_eq!(
        done.output,
        Some(serde_json::json!({"response": "The answer.", "provider": "modal-us"}))
    );
    assert_eq!(done.receipt, Some(serde_json::json!({"signature": "sig"})));
    assert_eq!(
        (done.latency_ms, done.completed_at, done.updated_at),
        (Some(1234), Some(t4), t4)
    );
    assert_eq!(
        (done.failure, done.provider_id.as_deref()),
        (None, Some("modal-us"))
    );

    let attempts = store.list_attempts(&e).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].started_at,
            attempts[0].finished_at
        ),
        (1, t1, Some(t2))
    );
    assert_eq!(attempts[0].outcome.as_deref(), Some("failed"));
    assert_eq!(
        (attempts[0].error_code.as_deref(), attempts[0].http_status),
        (Some("PROVIDER_HTTP_ERROR"), Some(502))
    );
    assert_eq!(
        (attempts[1].attempt, attempts[1].outcome.as_deref()),
        (2, Some("success"))
    );
    assert_eq!(
        (attempts[1].latency_ms, attempts[1].provider_id.as_deref()),
        (Some(1234), Some("modal-us"))
    );

    // Terminal is final: no new attempt, no second finish.
    assert_eq!(
        store
            .start_attempt(&e, "owner", t4)
            .await
            .unwrap()
            .map(|a| a.number),
        None
    );
    assert!(
        !store
            .finish_attempt(&failed(&e, 2, ExecutionStatus::Failed, t4), "owner")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_execution(&e).await.unwrap().unwrap().status,
        ExecutionStatus::Completed
    );
    assert!(store.list_attempts("nope").await.unwrap().is_empty());
    // Not a status an attempt can end in.
    let bad = failed(&exec_id("job-a", 5), 1, ExecutionStatus::Running, t4);
    assert!(store.finish_attempt(&bad, "owner").await.is_err());
});

contract_test!(writes_without_the_lease_are_fenced, |store| {
    insert(&store, "job-a").await;
    let e = exec_id("job-a", 0);
    // Nobody owns a queued job.
    assert_eq!(
        store
            .start_attempt(&e, "owner", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        None
    );
    claim(&store, "owner").await;
    assert_eq!(
        store
            .start_attempt(&e, "intruder", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        None
    );
    assert_eq!(
        store
            .start_attempt(&e, "owner", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        Some(1)
    );
    assert!(
        !store
            .finish_attempt(&completed(&e, 1, t0()), "intruder")
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_lease("job-a", "intruder", LEASE, t0())
            .await
            .unwrap()
    );
    assert_eq!(
        store.requeue_unfinished("job-a", "intruder").await.unwrap(),
        0
    );
    assert_eq!(
        store.get_execution(&e).await.unwrap().unwrap().status,
        ExecutionStatus::Running
    );
    assert!(
        store.list_attempts(&e).await.unwrap()[0]
            .finished_at
            .is_none()
    );
    assert!(
        !store
            .renew_lease("nope", "owner", LEASE, t0())
            .await
            .unwrap()
    );
});

contract_test!(pending_executions_in_seq_order_with_exclusions, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    let first: Vec<u32> = store
        .pending_executions("job-a", 5, &[])
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(first, [0, 1, 2, 3, 4]);
    let exclude = vec![exec_id("job-a", 0), exec_id("job-a", 2)];
    let next: Vec<u32> = store
        .pending_executions("job-a", 3, &exclude)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(next, [1, 3, 4]);
    run_one(&store, "owner", completed(&exec_id("job-a", 1), 0, t0())).await;
    store
        .start_attempt(&exec_id("job-a", 3), "owner", t0())
        .await
        .unwrap();
    let rest = store
        .pending_executions("job-a", 100, &exclude)
        .await
        .unwrap();
    assert_eq!(rest.len(), 27 - 4);
    assert!(rest.iter().all(|e| e.status == ExecutionStatus::Pending));
    assert_eq!(rest[0].seq, 4);
});

contract_test!(requeue_hands_in_flight_work_back, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    let (e0, e1, e2) = (
        exec_id("job-a", 0),
        exec_id("job-a", 1),
        exec_id("job-a", 2),
    );
    store.start_attempt(&e0, "owner", t0()).await.unwrap();
    store.start_attempt(&e1, "owner", t0()).await.unwrap();
    store
        .finish_attempt(&failed(&e1, 1, ExecutionStatus::Retrying, t0()), "owner")
        .await
        .unwrap();
    run_one(&store, "owner", completed(&e2, 0, t0())).await;
    assert_eq!(store.requeue_unfinished("job-a", "owner").await.unwrap(), 2);
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.running,
            counts.retrying,
            counts.completed
        ),
        (26, 0, 0, 1)
    );
    assert_eq!(
        store.list_attempts(&e0).await.unwrap()[0]
            .outcome
            .as_deref(),
        Some("interrupted")
    );
    assert_eq!(
        store.list_attempts(&e1).await.unwrap()[0]
            .outcome
            .as_deref(),
        Some("failed")
    );
    // Shutdown then releases; the job is resumable by anyone.
    store.release_lease("job-a", "owner").await.unwrap();
    let job = store
        .claim_job("next", LEASE, t0(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, "job-a");
    // The handed-back attempt's key is sent again, through any number of hand-backs;
    // e1's last attempt had failed, so its next one gets a key of its own.
    assert_eq!(
        store.start_attempt(&e0, "next", t0()).await.unwrap(),
        Some(StartedAttempt {
            number: 2,
            call_key: format!("{e0}:1")
        })
    );
    assert_eq!(store.requeue_unfinished("job-a", "next").await.unwrap(), 1);
    assert_eq!(
        store.start_attempt(&e0, "next", t0()).await.unwrap(),
        Some(StartedAttempt {
            number: 3,
            call_key: format!("{e0}:1")
        })
    );
    assert_eq!(
        store.start_attempt(&e1, "next", t0()).await.unwrap(),
        Some(StartedAttempt {
            number: 2,
            call_key: format!("{e1}:2")
        })
    );
});

contract_test!(an_execution_can_end_without_an_attempt, |store| {
    // The runner cannot even build the call (say the question is missing from the
    // plan): it fails the pending execution with attempt 0.
    insert(&store, "job-a").await;
    let e = exec_id("job-a", 7);
    let update = failed(&e, 0, ExecutionStatus::Failed, t0() + secs(1));
    assert!(
        !store.finish_attempt(&update, "owner").await.unwrap(),
        "nobody owns a queued job"
    );
    claim(&store, "owner").await;
    assert!(!store.finish_attempt(&update, "intruder").await.unwrap());
    assert!(store.finish_attempt(&update, "owner").await.unwrap());
    let row = store.get_execution(&e).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempt_count),
        (ExecutionStatus::Failed, 0)
    );
    assert_eq!(
        (row.completed_at, row.started_at),
        (Some(t0() + secs(1)), None)
    );
    assert_eq!(row.failure, Some(provider_failure()));
    assert!(
        store.list_attempts(&e).await.unwrap().is_empty(),
        "no attempt, no attempt row"
    );
    assert!(
        !store
            .finish_attempt(&completed(&e, 0, t0()), "owner")
            .await
            .unwrap(),
        "terminal is final"
    );
});

contract_test!(concurrent_attempts_all_land, |store| {
    // 32 workers drive 600 executions of one job at once: no lost write, no deadlock,
    // no busy error; then the job finalizes. Prints the throughput.
    let mut j = job("job-a");
    j.total = 600;
    store
        .insert_job(&j, &grid("job-a", 10, 20, 3, 1))
        .await
        .unwrap();
    claim(&store, "owner").await;
    let queue = Arc::new(std::sync::Mutex::new((0..600u32).collect::<Vec<_>>()));
    let started = std::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (store, queue) = (store.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(seq) = queue.lock().unwrap().pop() else {
                    break;
                };
                let id = exec_id("job-a", seq);
                let update = if seq % 10 == 0 {
                    failed(&id, 0, ExecutionStatus::Failed, t0())
                } else {
                    completed(&id, 0, t0())
                };
                run_one(&store, "owner", update).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: 600 start+finish pairs by 32 workers in {took:.3} s ({:.0} attempts/s)",
        store.backend(),
        600.0 / took
    );
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!(
        (counts.completed, counts.failed, counts.unfinished()),
        (540, 60, 0)
    );
    let done = store.finalize_job("job-a", t0()).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
});
