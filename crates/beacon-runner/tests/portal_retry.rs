//! The portal's retry buttons (portal-contract.md 2.2) against a real runner on both
//! backends: the old progress table's call (execution id, region slug) and RegionRow's
//! (job id, UI code, question index), a finished job reopened, the 429 life cap, and
//! retry-all-failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::portal::{QUESTIONS, sign_portal_way, string, unsigned_spec, wrapper};
use common::*;
use serde_json::{Value, json};

backend_test!(the_retry_buttons_rerun_failed_cells, |backend| async move {
    let broken = beacon_sim::Faults {
        inference_broken: true,
        ..beacon_sim::Faults::default()
    };
    let Some(stack) = Stack::start(
        backend,
        Opts {
            faults: [("eu-west", broken)].into_iter().collect(),
            scheduler: "max_attempts = 2\nmax_total_attempts = 2".into(),
            ..Opts::default()
        },
    )
    .await
    else {
        return;
    };
    let id = "bias-detection-retry";
    let mut unsigned = unsigned_spec(id, &QUESTIONS[..2], &MODELS[..1], &["US", "EU"]);
    // Half the cells are enough: the job completes with eu-west failed.
    unsigned["constraints"]["min_success_rate"] = json!(0.5);
    let spec = sign_portal_way(unsigned, &stack.key);
    let mut body = wrapper(spec, &["US", "EU"]);
    body["min_success_rate"] = json!(0.5);
    assert_eq!(
        stack
            .portal("POST", "/jobs/cross-region", Some(&body))
            .await
            .0,
        202
    );
    let done = stack.wait_terminal(id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{}", done["progress"]);
    let eu = |job: &Value| -> Vec<Value> {
        executions(job)
            .into_iter()
            .filter(|e| e["region"] == "eu-west")
            .collect()
    };
    let failed = eu(&done);
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|e| e["status"] == "failed" && e["retry_count"] == 0),
        "{failed:?}"
    );
    // The portal offers the button while retry_count < max_retries (= the life cap − 1).
    assert_eq!(failed[0]["max_retries"], 1);
    let e0 = string(&failed[0]["id"]).to_string();
    let retry = |exec: String, body: Value| {
        let stack = &stack;
        async move {
            stack
                .portal(
                    "POST",
                    &format!("/executions/{exec}/retry-question"),
                    Some(&body),
                )
                .await
        }
    };

    // The wrong region for that execution; a completed one has nothing to retry.
    let (status, err) = retry(e0.clone(), json!({"region": "US", "question_index": 0})).await;
    assert_eq!(
        (status, &err["error_code"]),
        (400, &json!("REGION_MISMATCH")),
        "{err}"
    );
    let us = executions(&done)
        .into_iter()
        .find(|e| e["region"] == "us-east")
        .unwrap();
    let (status, ok) = retry(string(&us["id"]).into(), json!({"region": "us-east"})).await;
    assert_eq!((status, &ok["status"]), (200, &json!("completed")), "{ok}");

    // The old progress table's way (slug): the finished job reopens, the cell runs
    // again (still broken) and the job finishes again.
    let (status, r) = retry(
        e0.clone(),
        json!({"region": "eu-west", "question_index": 0}),
    )
    .await;
    assert_eq!((status, &r["status"]), (200, &json!("retrying")), "{r}");
    assert_eq!(
        (&r["execution_id"], &r["retry_attempt"]),
        (&json!(e0), &json!(2))
    );
    let again = stack.wait_terminal(id, Duration::from_secs(60)).await;
    let cell = eu(&again)
        .into_iter()
        .find(|e| e["id"] == e0.as_str())
        .unwrap();
    // (A wait for the ejected provider counts as an attempt too: at least one more.)
    assert_eq!(cell["status"], "failed", "{cell}");
    assert!(
        cell["retry_count"].as_u64() >= cell["max_retries"].as_u64(),
        "{cell}"
    );
    // Its life cap is reached: 429, as the previous runner answered.
    let (status, cap) = retry(e0.clone(), json!({"region": "EU"})).await;
    assert_eq!(
        (status, &cap["error"]),
        (429, &json!("Max retry attempts reached")),
        "{cap}"
    );
    assert_eq!(
        (&cap["retry_attempt"], &cap["max_attempts"]),
        (&cell["attempts"], &json!(2))
    );

    // eu-west works again; RegionRow's way: the job id and a UI code.
    stack
        .sim("eu-west")
        .set_faults(serde_json::from_value(json!({"inference_broken": false})).unwrap())
        .unwrap();
    let (status, r) = retry(id.into(), json!({"region": "EU", "question_index": 1})).await;
    assert_eq!((status, &r["status"]), (200, &json!("retrying")), "{r}");
    assert_eq!(r["question_id"], QUESTIONS[1]);
    let last = stack.wait_terminal(id, Duration::from_secs(60)).await;
    let q1 = eu(&last)
        .into_iter()
        .find(|e| e["question_id"] == QUESTIONS[1])
        .unwrap();
    assert_eq!(q1["status"], "completed", "{q1}");
    // retry-all-failed leaves the capped cell alone.
    let (status, all) = stack
        .portal("POST", &format!("/executions/{id}/retry-all-failed"), None)
        .await;
    assert_eq!((status, &all["retried"]), (200, &json!(0)), "{all}");
    stack.shutdown().await;
});
