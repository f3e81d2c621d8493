//! What a user or the job's own rules do after the scheduler: retrying one failed
//! execution (the portal's retry button), reopening a finished job for it, and the
//! region quorum (`min_regions`) of the final verdict.

use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_store::contract_test;

use crate::fixtures::*;

contract_test!(a_user_retries_one_failed_execution, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner-a").await;
    let (e0, e1) = (exec_id("job-a", 0), exec_id("job-a", 1));
    run_one(
        &store,
        "owner-a",
        failed(&e0, 0, ExecutionStatus::Failed, t0()),
    )
    .await;
    run_one(&store, "owner-a", completed(&e1, 0, t0())).await;
    // A completed execution is not retried.
    let out = store.retry_execution(&e1).await.unwrap().unwrap();
    assert_eq!(
        (out.previous, out.requeued),
        (ExecutionStatus::Completed, false)
    );
    // The failed one is, with its outcome cleared and its attempt count kept.
    let out = store.retry_execution(&e0).await.unwrap().unwrap();
    assert_eq!(
        (out.previous, out.requeued, out.attempts),
        (ExecutionStatus::Failed, true, 1)
    );
    assert_eq!(out.job_status, JobStatus::Running);
    let e = store.get_execution(&e0).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Pending);
    assert!(e.failure.is_none() && e.receipt.is_none() && e.response.is_none());
    assert_eq!(e.attempt_count, 1);
    assert!(store.retry_execution("no-such").await.unwrap().is_none());
});

contract_test!(
    retrying_an_execution_of_a_finished_job_reopens_it,
    |store| {
        insert(&store, "job-a").await;
        claim(&store, "owner-a").await;
        let ids: Vec<String> = (0..27).map(|i| exec_id("job-a", i)).collect();
        run_one(
            &store,
            "owner-a",
            failed(&ids[0], 0, ExecutionStatus::Timeout, t0()),
        )
        .await;
        for id in &ids[1..] {
            run_one(&store, "owner-a", completed(id, 0, t0())).await;
        }
        let done = store.finalize_job("job-a", t0()).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        let out = store.retry_execution(&ids[0]).await.unwrap().unwrap();
        assert!(out.requeued);
        assert_eq!(out.job_status, JobStatus::Queued);
        let job = store.get_job("job-a").await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.finished_at, job.lease_owner),
            (JobStatus::Queued, None, None)
        );
        // Claimed again, only the retried execution is pending.
        claim(&store, "owner-b").await;
        let pending = store.pending_executions("job-a", 100, &[]).await.unwrap();
        assert_eq!(
            pending.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![ids[0].clone()]
        );
    }
);

contract_test!(
    a_region_quorum_fails_a_job_answered_by_too_few_regions,
    |store| {
        // min_success_rate 0.5 is met (18 of 27), but eu-west never answered and the job
        // wants all three regions.
        let mut j = job("job-q");
        j.min_success_rate = 0.5;
        j.min_regions = 3;
        store.insert_job(&j, &cells27("job-q")).await.unwrap();
        let stored = store.get_job("job-q").await.unwrap().unwrap();
        assert_eq!(stored.min_regions, 3);
        claim(&store, "owner-a").await;
        let execs = store
            .list_executions(&beacon_store::ExecutionFilter {
                job_id: Some("job-q".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .items;
        for e in &execs {
            let update = if e.region == "eu-west" {
                failed(&e.id, 0, ExecutionStatus::Failed, t0())
            } else {
                completed(&e.id, 0, t0())
            };
            run_one(&store, "owner-a", update).await;
        }
        let done = store.finalize_job("job-q", t0()).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.failure_reason.as_deref(), Some("below_min_regions"));
        assert!(
            done.failure_message
                .as_deref()
                .unwrap_or("")
                .contains("only 2 region(s) answered, 3 required"),
            "{:?}",
            done.failure_message
        );
    }
);
