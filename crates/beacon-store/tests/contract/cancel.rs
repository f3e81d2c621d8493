//! Finalize (computed once, by the beacon-core rule), user cancels, early stops and
//! retry-failed.

use std::sync::Arc;

use beacon_core::ErrorCode;
use beacon_core::status::{ExecutionStatus, JobStatus, failure_reason, final_job_status};
use beacon_store::{ExecutionFilter, Store, contract_test};

use crate::fixtures::*;

/// Drives executions `0..n` of job-a (as `owner`) to the given statuses in order.
async fn finish_all(store: &Arc<dyn Store>, owner: &str, statuses: &[ExecutionStatus]) {
    for (seq, status) in statuses.iter().enumerate() {
        let id = exec_id("job-a", seq as u32);
        let update = match status {
            ExecutionStatus::Completed => completed(&id, 0, t0() + secs(1)),
            s => failed(&id, 0, *s, t0() + secs(1)),
        };
        run_one(store, owner, update).await;
    }
}

fn repeat(completed: usize, failed: usize) -> Vec<ExecutionStatus> {
    let mut v = vec![ExecutionStatus::Completed; completed];
    v.extend(vec![ExecutionStatus::Failed; failed]);
    v
}

contract_test!(finalize_waits_for_every_execution_and_runs_once, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    finish_all(&store, "owner", &repeat(26, 0)).await;
    assert_eq!(
        store.finalize_job("job-a", t0() + secs(9)).await.unwrap(),
        None,
        "one pending left"
    );
    store
        .start_attempt(&exec_id("job-a", 26), "owner", t0())
        .await
        .unwrap();
    assert_eq!(
        store.finalize_job("job-a", t0() + secs(9)).await.unwrap(),
        None,
        "one running left"
    );
    store
        .finish_attempt(
            &completed(&exec_id("job-a", 26), 1, t0() + secs(2)),
            "owner",
        )
        .await
        .unwrap();

    let done = store
        .finalize_job("job-a", t0() + secs(10))
        .await
        .unwrap()
        .unwrap();
    let counts = store.counts("job-a").await.unwrap();
    let expected = final_job_status(&counts, 0.67, false, None).unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        (done.status, done.failure_message.as_deref()),
        (expected.status, Some(expected.message.as_str()))
    );
    assert_eq!(
        (done.finished_at, done.failure_reason.as_deref()),
        (Some(t0() + secs(10)), None)
    );
    assert_eq!(
        (done.lease_owner.as_deref(), done.lease_expires_at),
        (None, None)
    );
    assert_eq!(store.get_job("job-a").await.unwrap().unwrap(), done);
    // Computed once.
    assert_eq!(
        store.finalize_job("job-a", t0() + secs(11)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_job("job-a").await.unwrap().unwrap().finished_at,
        Some(t0() + secs(10))
    );
    assert!(
        !store
            .renew_lease("job-a", "owner", std::time::Duration::from_secs(5), t0())
            .await
            .unwrap()
    );
    assert_eq!(store.finalize_job("nope", t0()).await.unwrap(), None);
});

contract_test!(finalize_fails_below_the_threshold, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    // 18 of 27 = 0.667 < 0.67: failed, taken literally.
    let mut statuses = repeat(18, 6);
    statuses.extend([ExecutionStatus::Timeout; 3]);
    finish_all(&store, "owner", &statuses).await;
    let done = store
        .finalize_job("job-a", t0() + secs(10))
        .await
        .unwrap()
        .unwrap();
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!(
        (counts.completed, counts.failed, counts.timeout),
        (18, 6, 3)
    );
    let expected = final_job_status(&counts, 0.67, false, None).unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.failure_reason.as_deref(), expected.reason);
    assert_eq!(
        done.failure_reason.as_deref(),
        Some(failure_reason::BELOW_MIN_SUCCESS_RATE)
    );
    assert_eq!(done.failure_message, Some(expected.message));
    let f = store
        .get_execution(&exec_id("job-a", 20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (f.status, f.failure),
        (ExecutionStatus::Failed, Some(provider_failure()))
    );
    assert_eq!(f.completed_at, Some(t0() + secs(1)));
});

contract_test!(request_cancel_cancels_everything_in_one_go, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    finish_all(&store, "owner", &repeat(3, 0)).await;
    let (e3, e4) = (exec_id("job-a", 3), exec_id("job-a", 4));
    store.start_attempt(&e3, "owner", t0()).await.unwrap(); // in flight
    store.start_attempt(&e4, "owner", t0()).await.unwrap();
    store
        .finish_attempt(&failed(&e4, 1, ExecutionStatus::Retrying, t0()), "owner")
        .await
        .unwrap();

    let at = t0() + secs(30);
    let out = store
        .request_cancel("job-a", &cancel_failure(), at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (out.previous_status, out.new_status),
        (JobStatus::Running, JobStatus::Cancelled)
    );
    assert_eq!((out.executions_cancelled, out.cancelled_at), (24, at));

    let job = store.get_job("job-a").await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.cancel_requested_at, job.finished_at),
        (JobStatus::Cancelled, Some(at), Some(at))
    );
    assert_eq!((job.lease_owner, job.failure_reason), (None, None));
    assert!(
        job.failure_message
            .unwrap()
            .starts_with("cancelled by a user")
    );
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!(
        (counts.completed, counts.cancelled, counts.unfinished()),
        (3, 24, 0)
    );
    let c = store.get_execution(&e3).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.completed_at),
        (ExecutionStatus::Cancelled, Some(at))
    );
    assert_eq!(
        c.failure.as_ref().map(|f| f.code.clone()),
        Some(ErrorCode::Cancelled)
    );
    assert_eq!(c.failure, Some(cancel_failure()));
    assert_eq!(
        store.list_attempts(&e3).await.unwrap()[0]
            .outcome
            .as_deref(),
        Some("cancelled")
    );
    let page = store
        .list_executions(&ExecutionFilter {
            status: Some(ExecutionStatus::Cancelled),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 24);

    // A late answer from the old owner never overwrites the cancel.
    assert!(
        !store
            .finish_attempt(&completed(&e3, 1, at), "owner")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_execution(&e3).await.unwrap().unwrap().status,
        ExecutionStatus::Cancelled
    );
    // Not claimable, not finalizable again, cancel again changes nothing.
    assert!(
        store
            .claim_job(
                "other",
                std::time::Duration::from_secs(9),
                at + secs(999),
                &[]
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.finalize_job("job-a", at).await.unwrap(), None);
    let again = store
        .request_cancel("job-a", &cancel_failure(), at + secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.previous_status, again.new_status),
        (JobStatus::Cancelled, JobStatus::Cancelled)
    );
    assert_eq!((again.executions_cancelled, again.cancelled_at), (0, at));
    assert_eq!(
        store
            .request_cancel("nope", &cancel_failure(), at)
            .await
            .unwrap(),
        None
    );
});

contract_test!(request_cancel_of_a_queued_job, |store| {
    insert(&store, "job-a").await;
    let out = store
        .request_cancel("job-a", &cancel_failure(), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            out.previous_status,
            out.new_status,
            out.executions_cancelled
        ),
        (JobStatus::Queued, JobStatus::Cancelled, 27)
    );
    assert!(
        store
            .claim_job("o", std::time::Duration::from_secs(9), t0(), &[])
            .await
            .unwrap()
            .is_none()
    );
});

contract_test!(request_cancel_leaves_a_finished_job_alone, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    finish_all(&store, "owner", &repeat(27, 0)).await;
    let done = store
        .finalize_job("job-a", t0() + secs(5))
        .await
        .unwrap()
        .unwrap();
    let out = store
        .request_cancel("job-a", &cancel_failure(), t0() + secs(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (out.previous_status, out.new_status),
        (JobStatus::Completed, JobStatus::Completed)
    );
    assert_eq!(out.executions_cancelled, 0);
    assert_eq!(
        store.get_job("job-a").await.unwrap().unwrap(),
        done,
        "nothing set"
    );
    assert_eq!(store.counts("job-a").await.unwrap().completed, 27);
});

contract_test!(early_stop_reason_is_kept_by_finalize, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    // 2 completed and 9 failed: at best 18 of 27 (0.667 < 0.67), so unreachable.
    finish_all(&store, "owner", &repeat(2, 9)).await;
    let counts = store.counts("job-a").await.unwrap();
    assert!(counts.success_unreachable(0.67));
    store
        .start_attempt(&exec_id("job-a", 11), "owner", t0())
        .await
        .unwrap();
    let n = store
        .cancel_unfinished(
            "job-a",
            &cancel_failure(),
            Some(failure_reason::MIN_SUCCESS_RATE_UNREACHABLE),
        )
        .await
        .unwrap();
    assert_eq!(n, 16);
    // Finalized in the same transaction.
    let job = store.get_job("job-a").await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.failure_reason.as_deref(),
        Some(failure_reason::MIN_SUCCESS_RATE_UNREACHABLE)
    );
    assert_eq!(
        job.cancel_requested_at, None,
        "an early stop is not a user's cancel"
    );
    assert!(job.finished_at.is_some() && job.lease_owner.is_none());
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!(
        (counts.completed, counts.failed, counts.cancelled),
        (2, 9, 16)
    );
    let e = store
        .get_execution(&exec_id("job-a", 11))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, ExecutionStatus::Cancelled);
    assert_eq!(store.finalize_job("job-a", t0()).await.unwrap(), None);
    assert_eq!(
        store
            .cancel_unfinished("job-a", &cancel_failure(), None)
            .await
            .unwrap(),
        0
    );
});

contract_test!(
    cancel_unfinished_without_reason_finalizes_by_threshold,
    |store| {
        let mut j = job("job-a");
        j.min_success_rate = 0.5;
        store.insert_job(&j, &cells27("job-a")).await.unwrap();
        claim(&store, "owner").await;
        finish_all(&store, "owner", &repeat(14, 0)).await;
        assert_eq!(
            store
                .cancel_unfinished("job-a", &cancel_failure(), None)
                .await
                .unwrap(),
            13
        );
        let job = store.get_job("job-a").await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.failure_reason),
            (JobStatus::Completed, None)
        );
        assert_eq!(
            store
                .cancel_unfinished("nope", &cancel_failure(), None)
                .await
                .unwrap(),
            0
        );
    }
);

contract_test!(retry_failed_requeues_failed_and_timed_out_work, |store| {
    insert(&store, "job-a").await;
    // Not finished yet: nothing to retry.
    assert_eq!(store.retry_failed("job-a").await.unwrap(), 0);
    claim(&store, "owner").await;
    assert_eq!(store.retry_failed("job-a").await.unwrap(), 0);
    let mut statuses = repeat(20, 5);
    statuses.extend([ExecutionStatus::Timeout; 2]);
    finish_all(&store, "owner", &statuses).await;
    let done = store
        .finalize_job("job-a", t0() + secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);

    assert_eq!(store.retry_failed("job-a").await.unwrap(), 7);
    let job = store.get_job("job-a").await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        (job.finished_at, job.failure_reason, job.failure_message),
        (None, None, None)
    );
    assert_eq!((job.lease_owner, job.lease_expires_at), (None, None));
    assert_eq!(job.started_at, Some(t0()));
    let counts = store.counts("job-a").await.unwrap();
    assert_eq!((counts.completed, counts.pending), (20, 7));
    let e = store
        .get_execution(&exec_id("job-a", 21))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.status, e.attempt_count), (ExecutionStatus::Pending, 1));
    assert!(e.failure.is_none() && e.classification.is_none() && e.completed_at.is_none());
    assert!(e.response.is_none() && e.output.is_none() && e.next_attempt_at.is_none());
    assert!(e.provider_id.is_none() && e.latency_ms.is_none());
    assert_eq!(
        store.list_attempts(&e.id).await.unwrap().len(),
        1,
        "history kept"
    );
    let kept = store
        .get_execution(&exec_id("job-a", 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, ExecutionStatus::Completed);

    // The second round: claimable again, attempt numbers continue.
    claim(&store, "owner-2").await;
    assert_eq!(
        store
            .start_attempt(&e.id, "owner-2", t0())
            .await
            .unwrap()
            .map(|a| a.number),
        Some(2)
    );
    store
        .finish_attempt(&failed(&e.id, 2, ExecutionStatus::Failed, t0()), "owner-2")
        .await
        .unwrap();
    for seq in (20..27).filter(|s| *s != 21) {
        run_one(
            &store,
            "owner-2",
            failed(&exec_id("job-a", seq), 0, ExecutionStatus::Failed, t0()),
        )
        .await;
    }
    let again = store
        .finalize_job("job-a", t0() + secs(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.status,
        JobStatus::Completed,
        "20 of 27 still meets 0.67"
    );
    assert_eq!(
        store
            .list_attempts(&e.id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );

    // Nothing failed: 0 and untouched. Cancelled jobs are never retried.
    insert_at(&store, "job-b", 1).await;
    store
        .request_cancel("job-b", &cancel_failure(), t0())
        .await
        .unwrap();
    assert_eq!(store.retry_failed("job-b").await.unwrap(), 0);
    assert_eq!(
        store.get_job("job-b").await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(store.retry_failed("nope").await.unwrap(), 0);
});

contract_test!(retry_failed_with_nothing_failed_leaves_the_job, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    finish_all(&store, "owner", &repeat(27, 0)).await;
    let done = store
        .finalize_job("job-a", t0() + secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.retry_failed("job-a").await.unwrap(), 0);
    assert_eq!(store.get_job("job-a").await.unwrap().unwrap(), done);
});
