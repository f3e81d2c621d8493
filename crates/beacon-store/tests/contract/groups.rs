//! Group writes (`start_attempts`, `finish_attempts`): each member fenced on its own
//! and written as its single write would be, results in input order, all or nothing.

use std::sync::Arc;

use beacon_core::status::{Classification, ExecutionStatus};
use beacon_store::{StartedAttempt, Store, contract_test};

use crate::fixtures::*;

async fn numbers(store: &Arc<dyn Store>, ids: &[String], owner: &str) -> Vec<Option<u32>> {
    store
        .start_attempts(ids, owner, t0() + secs(1))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.map(|a| a.number))
        .collect()
}

contract_test!(a_group_is_fenced_member_by_member, |store| {
    insert_at(&store, "job-a", 0).await;
    insert_at(&store, "job-b", 1).await;
    claim(&store, "owner").await;
    claim(&store, "other").await;
    let (a0, a1, a2, b0) = (
        exec_id("job-a", 0),
        exec_id("job-a", 1),
        exec_id("job-a", 2),
        exec_id("job-b", 0),
    );
    store.start_attempt(&a2, "owner", t0()).await.unwrap();
    let ids = [
        a0.clone(),
        b0.clone(),
        a1.clone(),
        a2.clone(),
        "nope".into(),
    ];
    // Another owner's job, an execution already running, an unknown id: fenced.
    assert_eq!(
        numbers(&store, &ids, "owner").await,
        [Some(1), None, Some(1), None, None]
    );
    let started = store.get_execution(&a0).await.unwrap().unwrap();
    assert_eq!(
        (started.status, started.attempt_count, started.started_at),
        (ExecutionStatus::Running, 1, Some(t0() + secs(1)))
    );
    let b = store.get_execution(&b0).await.unwrap().unwrap();
    assert_eq!((b.status, b.attempt_count), (ExecutionStatus::Pending, 0));
    assert_eq!(
        store.list_attempts(&a1).await.unwrap()[0].call_key,
        Some(format!("{a1}:1"))
    );

    let t = t0() + secs(3);
    let updates = [
        completed(&a0, 1, t),
        failed(&a1, 1, ExecutionStatus::Retrying, t),
        completed(&b0, 1, t),
    ];
    assert_eq!(
        store.finish_attempts(&updates, "owner").await.unwrap(),
        [true, true, false]
    );
    let done = store.get_execution(&a0).await.unwrap().unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.response.as_deref(), Some("The answer."));
    assert_eq!(done.classification, Some(Classification::Substantive));
    assert_eq!(done.completed_at, Some(t));
    assert_eq!(done.provider_id.as_deref(), Some("modal-us"));
    assert!(done.receipt.is_some() && done.output.is_some());
    let attempts = store.list_attempts(&a0).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].outcome.as_deref(), attempts[0].finished_at),
        (Some("success"), Some(t))
    );
    assert_eq!(attempts[0].http_status, Some(200));
    // Retrying keeps no answer, as the single write.
    let retrying = store.get_execution(&a1).await.unwrap().unwrap();
    assert_eq!(retrying.status, ExecutionStatus::Retrying);
    assert_eq!(retrying.next_attempt_at, Some(t + secs(2)));
    assert!(retrying.response.is_none() && retrying.classification.is_none());
    assert_eq!(retrying.failure, Some(provider_failure()));
    assert_eq!(
        store.list_attempts(&a1).await.unwrap()[0]
            .outcome
            .as_deref(),
        Some("failed")
    );
    assert_eq!(
        store.get_execution(&b0).await.unwrap().unwrap().status,
        ExecutionStatus::Pending
    );
    // A terminal execution is not written again.
    assert_eq!(
        store
            .finish_attempts(&[failed(&a0, 1, ExecutionStatus::Failed, t)], "owner")
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        store.get_execution(&a0).await.unwrap().unwrap().status,
        ExecutionStatus::Completed
    );
});

contract_test!(
    a_group_start_after_a_hand_back_reuses_the_call_key,
    |store| {
        insert(&store, "job-a").await;
        claim(&store, "owner").await;
        let (e0, e1) = (exec_id("job-a", 0), exec_id("job-a", 1));
        let ids = [e0.clone(), e1.clone()];
        assert_eq!(numbers(&store, &ids, "owner").await, [Some(1), Some(1)]);
        store
            .finish_attempts(
                &[failed(&e1, 1, ExecutionStatus::Retrying, t0() + secs(2))],
                "owner",
            )
            .await
            .unwrap();
        assert_eq!(store.requeue_unfinished("job-a", "owner").await.unwrap(), 2);
        let again = store
            .start_attempts(&ids, "owner", t0() + secs(5))
            .await
            .unwrap();
        assert_eq!(
            again,
            [
                // Interrupted: its answer may be waiting at the router under that key.
                Some(StartedAttempt {
                    number: 2,
                    call_key: format!("{e0}:1")
                }),
                // Failed before the hand-back: a new key.
                Some(StartedAttempt {
                    number: 2,
                    call_key: format!("{e1}:2")
                }),
            ]
        );
    }
);

contract_test!(a_group_is_all_or_nothing, |store| {
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    let e0 = exec_id("job-a", 0);
    let e1 = exec_id("job-a", 1);
    assert!(
        store
            .start_attempts(&[], "owner", t0())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .finish_attempts(&[], "owner")
            .await
            .unwrap()
            .is_empty()
    );
    // The same execution twice is refused, and nothing of the group is written.
    let twice = [e1.clone(), e0.clone(), e0.clone()];
    assert!(store.start_attempts(&twice, "owner", t0()).await.is_err());
    for e in [&e0, &e1] {
        let x = store.get_execution(e).await.unwrap().unwrap();
        assert_eq!((x.status, x.attempt_count), (ExecutionStatus::Pending, 0));
        assert!(store.list_attempts(e).await.unwrap().is_empty());
    }
    store
        .start_attempts(std::slice::from_ref(&e0), "owner", t0())
        .await
        .unwrap();
    let twice = [completed(&e0, 1, t0()), completed(&e0, 1, t0())];
    assert!(store.finish_attempts(&twice, "owner").await.is_err());
    assert_eq!(
        store.get_execution(&e0).await.unwrap().unwrap().status,
        ExecutionStatus::Running
    );
});

contract_test!(a_group_stores_what_the_single_writes_store, |store| {
    // Row by row what the single writes store: every column, answers with U+0000
    // and with awkward text byte for byte, a retry, an end without an attempt
    // (attempt 0: no attempt row) and an end whose start row is missing (upserted).
    insert(&store, "job-a").await;
    claim(&store, "owner").await;
    let e = |i: u32| exec_id("job-a", i);
    let t = t0() + secs(3);
    let nul = "before\u{0}after \u{0}\u{0} end \u{1f600}\u{7}";
    let awkward = "\"quoted\" \\ back \\u0041 \u{1f600}\u{7} 中文\n\ttab";
    let with_text = |id: &str, text: &str| beacon_store::AttemptUpdate {
        response: Some(text.to_string()),
        output: Some(serde_json::json!({"response": text, "n": [1, 2.5, null]})),
        ..completed(id, 1, t)
    };
    let update = |kind: u32, id: &str| match kind {
        0 => with_text(id, nul),
        1 => with_text(id, awkward),
        2 => failed(id, 1, ExecutionStatus::Retrying, t),
        3 => failed(id, 0, ExecutionStatus::Failed, t),
        _ => completed(id, 1, t),
    };
    // Kind k: execution 2k written alone, 2k + 1 in the group. Kinds 0-2 start
    // first; kinds 3 and 4 end without a start.
    for k in 0..3 {
        store
            .start_attempt(&e(2 * k), "owner", t0() + secs(1))
            .await
            .unwrap();
    }
    let grouped: Vec<String> = (0..3).map(|k| e(2 * k + 1)).collect();
    let started = store
        .start_attempts(&grouped, "owner", t0() + secs(1))
        .await
        .unwrap();
    assert!(started.iter().all(Option::is_some), "{started:?}");
    let mut group = Vec::new();
    for k in 0..5 {
        assert!(
            store
                .finish_attempt(&update(k, &e(2 * k)), "owner")
                .await
                .unwrap()
        );
        group.push(update(k, &e(2 * k + 1)));
    }
    assert_eq!(
        store.finish_attempts(&group, "owner").await.unwrap(),
        [true; 5]
    );
    let strip = |v: Vec<beacon_store::AttemptRecord>| {
        v.into_iter()
            .map(|mut r| {
                r.execution_id.clear();
                r.call_key = None;
                r
            })
            .collect::<Vec<_>>()
    };
    for k in 0..5 {
        let (a, b) = (e(2 * k), e(2 * k + 1));
        let single = store.get_execution(&a).await.unwrap().unwrap();
        let mut via_group = store.get_execution(&b).await.unwrap().unwrap();
        via_group.id = single.id.clone();
        via_group.seq = single.seq;
        via_group.question_id = single.question_id.clone();
        via_group.model_id = single.model_id.clone();
        via_group.region = single.region.clone();
        via_group.run_index = single.run_index;
        assert_eq!(via_group, single, "kind {k}: execution {b} against {a}");
        assert_eq!(
            strip(store.list_attempts(&b).await.unwrap()),
            strip(store.list_attempts(&a).await.unwrap()),
            "kind {k}: attempts of {b} against {a}"
        );
    }
    for (i, text) in [(1, nul), (3, awkward)] {
        let kept = store.get_execution(&e(i)).await.unwrap().unwrap();
        assert_eq!(kept.response.as_deref(), Some(text));
        assert_eq!(kept.output.unwrap()["response"], text);
    }
    assert_eq!(store.list_attempts(&e(7)).await.unwrap().len(), 0);
    assert_eq!(store.list_attempts(&e(9)).await.unwrap().len(), 1);
});
