//! The transparency log: every receipt written is logged once, with a dense 0-based
//! sequence, in the order it was written; appending is idempotent; a re-run execution
//! gets a new leaf and its old one stays; concurrent appenders (and writers) never
//! skip or repeat a number.

use std::collections::HashSet;
use std::sync::Arc;

use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_core::transparency::{ReceiptLeaf, leaf_hash};
use beacon_store::{AttemptUpdate, Inserted, Store, contract_test};
use serde_json::{Value, json};

use crate::fixtures::*;

/// A receipt unique to its execution and round (real receipts name their execution
/// and carry its completion time).
fn receipt(execution_id: &str, round: u32) -> Value {
    json!({"schema": "beacon.receipt/v1", "execution_id": execution_id, "round": round,
           "z": [1, 2.5], "signature": "sig"})
}

fn done(execution_id: &str, round: u32, at_secs: i64) -> AttemptUpdate {
    AttemptUpdate {
        receipt: Some(receipt(execution_id, round)),
        ..completed(execution_id, 0, t0() + secs(at_secs))
    }
}

/// Appends with `limit` until nothing is left; returns the batch sizes.
async fn drain(store: &Arc<dyn Store>, limit: u32) -> Vec<u64> {
    let mut batches = Vec::new();
    loop {
        let n = store.append_receipts(limit, t0() + secs(60)).await.unwrap();
        if n == 0 {
            return batches;
        }
        batches.push(n);
    }
}

/// A job of `n` executions (one region each), claimed by `owner`.
async fn small_job(store: &Arc<dyn Store>, id: &str, n: usize, owner: &str) {
    let mut j = job(id);
    j.total = n as u64;
    j.min_success_rate = 1.0;
    let cells = grid(id, 1, 1, n, 1);
    assert!(matches!(
        store.insert_job(&j, &cells).await.unwrap(),
        Inserted::Created(_)
    ));
    claim(store, owner).await;
}

contract_test!(every_receipt_written_is_logged_once_densely, |store| {
    let head = store.log_head().await.unwrap();
    assert_eq!((head.size, head.updated_at, head.queued), (0, None, 0));
    assert_eq!(store.append_receipts(10, t0()).await.unwrap(), 0);
    insert(&store, "job-t").await;
    claim(&store, "owner").await;
    // Written out of execution order: the log follows the order of writing.
    let order = [4u32, 0, 7, 2, 9];
    for (i, seq) in order.iter().enumerate() {
        run_one(&store, "owner", done(&exec_id("job-t", *seq), 0, i as i64)).await;
    }
    // A failure without a receipt queues nothing.
    run_one(
        &store,
        "owner",
        failed(&exec_id("job-t", 1), 0, ExecutionStatus::Failed, t0()),
    )
    .await;
    assert_eq!(store.log_head().await.unwrap().queued, 5);

    assert_eq!(drain(&store, 2).await, [2, 2, 1]);
    let head = store.log_head().await.unwrap();
    assert_eq!((head.size, head.queued), (5, 0));
    assert_eq!(head.updated_at, Some(t0() + secs(60)));

    let leaves = store.log_leaves(0, 100).await.unwrap();
    assert_eq!(
        leaves.iter().map(|l| l.sequence).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    for (leaf, seq) in leaves.iter().zip(order) {
        let id = exec_id("job-t", seq);
        assert_eq!(leaf.execution_id, id);
        assert_eq!(
            leaf.leaf_data,
            ReceiptLeaf::from_value(&receipt(&id, 0)).data
        );
        assert_eq!(leaf.appended_at, t0() + secs(60));
    }
    assert_eq!(
        store.log_leaves(3, 100).await.unwrap(),
        leaves[3..].to_vec()
    );
    assert_eq!(store.log_leaves(1, 2).await.unwrap(), leaves[1..3].to_vec());
    assert!(store.log_leaves(5, 100).await.unwrap().is_empty());
    assert!(store.log_leaves(0, 0).await.unwrap().is_empty());

    let id = exec_id("job-t", 7);
    let entry = store.log_entry_for_execution(&id).await.unwrap().unwrap();
    assert_eq!((entry.sequence, entry.job_id.as_str()), (2, "job-t"));
    let leaf = ReceiptLeaf::from_value(&receipt(&id, 0));
    assert_eq!(entry.receipt, leaf.text, "the canonical text is kept");
    assert_eq!(entry.leaf_data, leaf.data);
    assert_eq!(entry.leaf_hash, leaf_hash(&leaf.data));
    assert_eq!(
        store
            .log_entry_by_leaf_hash(&entry.leaf_hash)
            .await
            .unwrap(),
        Some(entry)
    );
    assert_eq!(
        store.log_entry_by_leaf_hash(&[7u8; 32]).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .log_entry_for_execution(&exec_id("job-t", 1))
            .await
            .unwrap(),
        None
    );

    // Idempotent: nothing new, nothing appended.
    assert!(drain(&store, 10).await.is_empty());
    assert_eq!(store.log_head().await.unwrap().size, 5);
});

contract_test!(
    a_rerun_execution_gets_a_new_leaf_and_its_old_one_stays,
    |store| {
        small_job(&store, "job-r", 2, "owner").await;
        let (e0, e1) = (exec_id("job-r", 0), exec_id("job-r", 1));
        let failed_with_receipt = AttemptUpdate {
            receipt: Some(receipt(&e0, 0)),
            ..failed(&e0, 0, ExecutionStatus::Failed, t0())
        };
        run_one(&store, "owner", failed_with_receipt).await;
        run_one(&store, "owner", done(&e1, 0, 1)).await;
        let job = store.finalize_job("job-r", t0() + secs(2)).await.unwrap();
        assert_eq!(job.map(|j| j.status), Some(JobStatus::Failed));
        // The re-run clears the stored receipt before anything was appended: the queued
        // copy is still logged.
        assert_eq!(store.retry_failed("job-r").await.unwrap(), 1);
        assert!(
            store
                .get_execution(&e0)
                .await
                .unwrap()
                .unwrap()
                .receipt
                .is_none()
        );
        assert_eq!(drain(&store, 100).await, [2]);
        claim(&store, "owner").await;
        run_one(&store, "owner", done(&e0, 1, 3)).await;
        assert_eq!(drain(&store, 100).await, [1]);

        let newest = store.log_entry_for_execution(&e0).await.unwrap().unwrap();
        assert_eq!(newest.sequence, 2);
        assert_eq!(
            newest.receipt,
            ReceiptLeaf::from_value(&receipt(&e0, 1)).text
        );
        let old = ReceiptLeaf::from_value(&receipt(&e0, 0));
        let first = store
            .log_entry_by_leaf_hash(&old.leaf_hash())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.sequence, first.execution_id.as_str()),
            (0, e0.as_str())
        );
    }
);

contract_test!(the_same_receipt_written_twice_is_logged_once, |store| {
    small_job(&store, "job-d", 1, "owner").await;
    let e0 = exec_id("job-d", 0);
    let same = || AttemptUpdate {
        receipt: Some(receipt(&e0, 0)),
        ..failed(&e0, 0, ExecutionStatus::Failed, t0())
    };
    run_one(&store, "owner", same()).await;
    assert_eq!(drain(&store, 100).await, [1]);
    // Logged already, then written again (and twice within one batch).
    for _ in 0..2 {
        store.finalize_job("job-d", t0() + secs(1)).await.unwrap();
        assert_eq!(store.retry_failed("job-d").await.unwrap(), 1);
        claim(&store, "owner").await;
        run_one(&store, "owner", same()).await;
    }
    assert_eq!(store.log_head().await.unwrap().queued, 2);
    assert!(drain(&store, 100).await.is_empty());
    let head = store.log_head().await.unwrap();
    assert_eq!(
        (head.size, head.queued),
        (1, 0),
        "queue drained, nothing added"
    );
});

contract_test!(
    concurrent_appenders_and_writers_never_skip_or_repeat,
    |store| {
        const N: u32 = 120;
        small_job(&store, "job-c", N as usize, "owner").await;
        // Writers store receipts while four appenders drain the queue in small batches.
        let mut writers = Vec::new();
        for w in 0..3u32 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for seq in (w..N).step_by(3) {
                    run_one(&store, "owner", done(&exec_id("job-c", seq), 0, 0)).await;
                }
            }));
        }
        let mut appenders = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            appenders.push(tokio::spawn(async move {
                let mut total = 0;
                for _ in 0..400 {
                    total += store.append_receipts(7, t0()).await.unwrap();
                    if store.log_head().await.unwrap().size == u64::from(N) {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                total
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let mut appended = 0;
        for a in appenders {
            appended += a.await.unwrap();
        }
        appended += drain(&store, 1000).await.iter().sum::<u64>();
        assert_eq!(appended, u64::from(N));
        let leaves = store.log_leaves(0, 1000).await.unwrap();
        assert_eq!(leaves.len(), N as usize);
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(leaf.sequence, i as u64, "dense");
        }
        let ids: HashSet<&str> = leaves.iter().map(|l| l.execution_id.as_str()).collect();
        assert_eq!(ids.len(), N as usize, "each receipt once");
        let head = store.log_head().await.unwrap();
        assert_eq!((head.size, head.queued), (u64::from(N), 0));
    }
);
