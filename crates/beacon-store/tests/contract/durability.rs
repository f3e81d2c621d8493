//! What the scheduler's fault handling relies on: answers stored byte for byte (U+0000
//! included), database refusals told apart from outages, and the cross-instance cancel
//! signal.

use std::time::Duration;

use beacon_core::status::ExecutionStatus;
use beacon_store::{Signal, contract_test};

use crate::fixtures::*;

contract_test!(an_answer_with_nul_is_stored_byte_for_byte, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner-a").await;
    let e0 = exec_id("job-a", 0);
    let text = "before\u{0}after \u{0}\u{0} end \u{1f600}\u{7}";
    let update = beacon_store::AttemptUpdate {
        response: Some(text.to_string()),
        ..completed(&e0, 0, t0())
    };
    run_one(&store, "owner-a", update).await;
    let stored = store.get_execution(&e0).await.unwrap().unwrap();
    assert_eq!(stored.status, ExecutionStatus::Completed);
    assert_eq!(stored.response.as_deref(), Some(text));
    let listed = store
        .list_executions(&beacon_store::ExecutionFilter {
            job_id: Some("job-a".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let row = listed.items.iter().find(|e| e.id == e0).unwrap();
    assert_eq!(row.response.as_deref(), Some(text));
});

contract_test!(a_conflicting_job_is_not_transient, |store| {
    // A duplicate job id with another body is a refusal of the data itself.
    insert(&store, "job-a").await;
    let mut other = job("job-a");
    other.spec_sha256 = "another".into();
    other.spec_json = "{\"other\":true}".into();
    let err = store.insert_job(&other, &[]).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_has_no_signals() {
    let (store, _tmp) = beacon_store::testing::sqlite_store().await;
    assert!(store.listen().await.unwrap().is_none());
    store.notify_cancel_done("job-a").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancel_signals_reach_other_instances() {
    let Some((store, db)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    insert(&store, "job-a").await;
    claim(&store, "owner-a").await;
    let mut signals = store.listen().await.unwrap().expect("postgres listens");
    store
        .request_cancel("job-a", &cancel_failure(), t0())
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), signals.recv())
        .await
        .expect("the cancel signal arrives")
        .unwrap();
    assert_eq!(got, Some(Signal::CancelRequested("job-a".into())));
    store.notify_cancel_done("job-a").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), signals.recv())
        .await
        .expect("the done signal arrives")
        .unwrap();
    assert_eq!(got, Some(Signal::CancelDone("job-a".into())));
    // A cancel of a job already terminal says nothing.
    store
        .request_cancel("job-a", &cancel_failure(), t0())
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), signals.recv())
            .await
            .is_err()
    );
    drop(signals);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_transient() {
    // Nothing listens on port 1: connecting fails the way an outage does.
    let err = beacon_store::connect("postgres://postgres@127.0.0.1:1/none")
        .await
        .err()
        .expect("no server on port 1");
    assert!(err.is_transient(), "{err}");
}
