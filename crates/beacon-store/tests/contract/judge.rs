//! Judge labels: the finder returns completed, non-empty answers of finished jobs that
//! lack a label of the rubric, page by page; a label is stored once per rubric (a second
//! insert changes nothing); a job's labels read back in job order, the reply cut to 500
//! characters; the table refuses an unknown label.

use std::sync::Arc;

use beacon_core::status::{Classification, ExecutionStatus};
use beacon_store::{AttemptUpdate, Inserted, JUDGE_RAW_CHARS, JudgeLabel, Store, contract_test};

use crate::fixtures::*;

/// Job `id` with 5 executions, finished: 0, 1, 3 answered, 2 answered empty, 4 failed.
async fn finished_job(store: &Arc<dyn Store>, id: &str) {
    let mut j = job(id);
    j.total = 5;
    j.min_success_rate = 0.1;
    let cells = grid(id, 1, 1, 5, 1);
    assert!(matches!(
        store.insert_job(&j, &cells).await.unwrap(),
        Inserted::Created(_)
    ));
    claim(store, "owner").await;
    for seq in 0..5 {
        let e = exec_id(id, seq);
        let update = match seq {
            2 => AttemptUpdate {
                response: Some(String::new()),
                classification: Some(Classification::EmptyResponse),
                ..completed(&e, 0, t0())
            },
            4 => failed(&e, 0, ExecutionStatus::Failed, t0()),
            _ => completed(&e, 0, t0()),
        };
        run_one(store, "owner", update).await;
    }
    assert!(
        store
            .finalize_job(id, t0() + secs(1))
            .await
            .unwrap()
            .is_some()
    );
}

fn label(execution_id: &str, rubric: &str, label: &str, raw: &str) -> JudgeLabel {
    JudgeLabel {
        execution_id: execution_id.to_string(),
        rubric: rubric.to_string(),
        label: label.to_string(),
        model: "judge-model".into(),
        provider_id: Some("modal-eu".into()),
        raw: raw.to_string(),
        created_at: t0() + secs(5),
    }
}

async fn candidate_ids(
    store: &Arc<dyn Store>,
    rubric: &str,
    after: &str,
    page: u32,
) -> Vec<String> {
    store
        .judge_candidates(rubric, after, page)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.execution_id)
        .collect()
}

contract_test!(
    judge_candidates_are_finished_non_empty_answers_paged,
    |store| {
        // A running job's answers wait until the job is over.
        insert(&store, "job-a").await;
        claim(&store, "owner").await;
        run_one(&store, "owner", completed(&exec_id("job-a", 0), 0, t0())).await;
        assert!(candidate_ids(&store, "v1", "", 100).await.is_empty());

        finished_job(&store, "job-j").await;
        let (e0, e1, e3) = (
            exec_id("job-j", 0),
            exec_id("job-j", 1),
            exec_id("job-j", 3),
        );
        assert_eq!(
            candidate_ids(&store, "v1", "", 2).await,
            vec![e0.clone(), e1.clone()]
        );
        assert_eq!(candidate_ids(&store, "v1", &e1, 2).await, vec![e3.clone()]);
        assert!(candidate_ids(&store, "v1", &e3, 2).await.is_empty());

        let c = &store.judge_candidates("v1", "", 1).await.unwrap()[0];
        assert_eq!(
            (
                c.job_id.as_str(),
                c.question_id.as_str(),
                c.model_id.as_str()
            ),
            ("job-j", "q0", "m0")
        );
        assert_eq!(
            (c.region.as_str(), c.response.as_str()),
            ("us-east", "The answer.")
        );
    }
);

contract_test!(a_judge_label_is_stored_once_per_rubric, |store| {
    finished_job(&store, "job-j").await;
    let (e0, e1, e3) = (
        exec_id("job-j", 0),
        exec_id("job-j", 1),
        exec_id("job-j", 3),
    );
    let long = "R".repeat(JUDGE_RAW_CHARS + 300);
    assert!(
        store
            .insert_judge_label(&label(&e1, "v1", "refusal", &long))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_judge_label(&label(&e0, "v1", "unparsed", "hm"))
            .await
            .unwrap()
    );
    // The same execution and rubric again: nothing changes.
    assert!(
        !store
            .insert_judge_label(&label(&e1, "v1", "substantive", "x"))
            .await
            .unwrap()
    );

    assert_eq!(candidate_ids(&store, "v1", "", 10).await, vec![e3.clone()]);
    // Another rubric version has labelled nothing yet.
    assert_eq!(candidate_ids(&store, "v2", "", 10).await.len(), 3);

    let labels = store.judge_labels("job-j", "v1").await.unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0], label(&e0, "v1", "unparsed", "hm"), "job order");
    assert_eq!(labels[1].label, "refusal", "the first label stays");
    assert_eq!(labels[1].raw, "R".repeat(JUDGE_RAW_CHARS));
    assert!(store.judge_labels("job-j", "v2").await.unwrap().is_empty());

    assert!(
        store
            .insert_judge_label(&label(&e3, "v2", "partial", "PARTIAL"))
            .await
            .unwrap()
    );
    assert_eq!(store.count_judge_labels("job-j").await.unwrap(), 3);
    assert_eq!(store.count_judge_labels("job-none").await.unwrap(), 0);

    // Only the four labels exist, and only for executions that exist.
    assert!(
        store
            .insert_judge_label(&label(&e3, "v1", "maybe", "?"))
            .await
            .is_err()
    );
    assert!(
        store
            .insert_judge_label(&label("no-such-execution", "v1", "refusal", ""))
            .await
            .is_err()
    );
    assert_eq!(candidate_ids(&store, "v1", "", 10).await, vec![e3]);
});
