//! Routine faults that must not cost money or answers (issue: durability under routine
//! faults): a router that lies about provenance or sends too much, a database that
//! refuses an answer, a router restart under a running job.
//!
//! The lying router (`beacon_drills::hostile`) is a proxy in front of the real router:
//! every call reaches the real router and the simulators (so provider calls are
//! counted as usual), and only the `/inference` answer is rewritten on its way back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use beacon_drills::hostile::{Lie, LyingRouter};
use common::*;
use serde_json::{Value, json};

const Q3: [&str; 3] = ["math_basic", "tiananmen_neutral", "taiwan_status"];

/// No early stop: every execution meets the fault, whatever the others did.
static EVERY_CELL: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"constraints": {"min_success_rate": 0.0}}));

/// A runner (scheduler on) that calls the stack's router through a lying proxy; the
/// proxy stops when its handle is dropped, so the caller keeps it with the runner.
async fn lying_runner(
    stack: &Stack,
    lie: Lie,
    tables: &str,
) -> (beacon_runner::RunnerHandle, LyingRouter) {
    let proxy = LyingRouter::start(&stack.router.url, lie).await.unwrap();
    let runner = beacon_runner::start(runner_config_with(&stack.db.url, proxy.url(), "", tables))
        .await
        .unwrap();
    (runner, proxy)
}

async fn api_only(backend: Backend) -> Option<Stack> {
    Stack::start(
        backend,
        Opts {
            scheduler: "enabled = false".into(),
            ..Opts::default()
        },
    )
    .await
}

backend_test!(
    an_answer_without_provenance_fails_and_is_never_signed_as_served,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let (runner, _liar) = lying_runner(&stack, Lie::NoProvenance, "").await;
        // min_success_rate 0: no early stop, so every execution meets the liar.
        let spec = stack.spec("job-liar", &Q3, &MODELS, &REGIONS, EVERY_CELL.clone());
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 202, "{body}");
        let job = stack
            .wait_terminal("job-liar", Duration::from_secs(30))
            .await;
        let execs = executions(&job);
        assert_eq!(execs.len(), 27);
        for e in &execs {
            assert_refused(e, "ROUTER_BAD_RESPONSE", "without naming the provider");
            let receipt = &e["receipt"];
            assert!(
                receipt.is_null() || receipt["status"] != "completed",
                "no receipt says served: {receipt}"
            );
        }
        // Not retried: one provider call per execution.
        assert_eq!(stack.all_live_calls().len(), 27);
        runner.shutdown().await;
        stack.shutdown().await;
    }
);

/// Runs a one-question, one-model job (3 executions) through a runner behind a liar
/// telling `lie`, and returns its executions once it is terminal.
async fn through_liar(stack: &Stack, lie: Lie, tables: &str, id: &str) -> Vec<Value> {
    let (runner, _liar) = lying_runner(stack, lie, tables).await;
    let spec = stack.spec(id, &Q3[..1], &MODELS[..1], &REGIONS, EVERY_CELL.clone());
    assert_eq!(stack.submit(&spec).await.0, 202);
    let job = stack.wait_terminal(id, Duration::from_secs(30)).await;
    runner.shutdown().await;
    executions(&job)
}

/// Failed for good with `code`, the message naming `limit`, nothing of the answer kept.
fn assert_refused(e: &Value, code: &str, limit: &str) {
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["failure"]["code"], code, "{e}");
    assert_eq!(e["failure"]["transient"], false, "{e}");
    let message = e["failure"]["message"].as_str().unwrap_or("");
    assert!(message.contains(limit), "{e}");
    assert!(e["output"]["response"].is_null(), "{e}");
}

backend_test!(
    oversized_router_answers_are_cut_off_and_not_stored,
    |backend| async move {
        let Some(stack) = api_only(backend).await else {
            return;
        };
        let limits = "[limits]\nmax_router_body_bytes = 1048576\nmax_answer_bytes = 4096\n";
        // 64 MiB streamed without a Content-Length: read up to the limit, then dropped.
        let huge = through_liar(&stack, Lie::HugeBody(64 << 20), limits, "job-huge").await;
        // A body under the limit whose answer text is over what one execution keeps.
        let long = through_liar(&stack, Lie::LongAnswer(100_000), limits, "job-long").await;
        for e in &huge {
            assert_refused(e, "ROUTER_RESPONSE_TOO_LARGE", "max_router_body_bytes");
        }
        for e in &long {
            assert_refused(e, "ROUTER_RESPONSE_TOO_LARGE", "max_answer_bytes");
        }
        // Neither job retried: one call per execution.
        assert_eq!(huge.len() + long.len(), 6);
        assert_eq!(stack.all_live_calls().len(), 6);
        stack.shutdown().await;
    }
);

backend_test!(
    a_database_that_refuses_an_answer_ends_it_with_one_call,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        // The database refuses to mark eu-west executions completed: a persistent
        // error (a trigger), not an outage.
        match backend {
            Backend::Sqlite => {
                stack
                    .sql(&[
                        "CREATE TRIGGER refuse_eu BEFORE UPDATE OF status ON executions \
                      WHEN NEW.status = 'completed' AND NEW.region = 'eu-west' \
                      BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END",
                    ])
                    .await
            }
            Backend::Postgres => {
                stack
                    .sql(&[
                        "CREATE FUNCTION refuse_eu() RETURNS trigger AS $$ BEGIN \
                      IF NEW.status = 'completed' AND NEW.region = 'eu-west' THEN \
                      RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ \
                      LANGUAGE plpgsql",
                        "CREATE TRIGGER refuse_eu BEFORE UPDATE ON executions \
                      FOR EACH ROW EXECUTE FUNCTION refuse_eu()",
                    ])
                    .await
            }
        }
        let spec = stack.spec(
            "job-refused",
            &Q3,
            &MODELS,
            &REGIONS,
            json!({"constraints": {"min_success_rate": 0.5}}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-refused", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed", "{}", job["progress"]);
        for e in executions(&job) {
            if e["region"] == "eu-west" {
                assert_eq!(e["status"], "failed", "{e}");
                assert_eq!(e["failure"]["code"], "STORE_WRITE_FAILED", "{e}");
                assert!(
                    e["failure"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("refused by the test trigger"),
                    "{e}"
                );
            } else {
                assert_eq!(e["status"], "completed", "{e}");
            }
        }
        // Each eu-west answer was bought once, never again.
        assert_eq!(stack.live_calls("eu-west").len(), 9);
        assert_eq!(stack.all_live_calls().len(), 27);
        stack.shutdown().await;
    }
);

backend_test!(
    an_answer_with_nul_is_stored_byte_for_byte_and_bought_once,
    |backend| async move {
        let nul = beacon_sim::Faults {
            nul_rate: 1.0,
            ..beacon_sim::Faults::default()
        };
        let faults = REGIONS.iter().map(|r| (*r, nul.clone())).collect();
        let Some(stack) = Stack::start(
            backend,
            Opts {
                faults,
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec("job-nul", &Q3, &MODELS, &REGIONS, json!({}));
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-nul", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed", "{}", job["progress"]);
        // What each simulator served, by (model, prompt hash); one call per cell.
        let calls = stack.all_live_calls();
        assert_eq!(calls.len(), 27, "each answer bought once");
        let served: std::collections::HashSet<String> = calls
            .iter()
            .map(|c| {
                c.response_sha256
                    .clone()
                    .expect("a served answer has a hash")
            })
            .collect();
        for e in executions(&job) {
            assert_eq!(e["status"], "completed", "{e}");
            let text = e["output"]["response"].as_str().unwrap();
            assert!(text.contains('\u{0}'), "the NUL survived: {text:?}");
            let sha = beacon_core::receipt::sha256_hex(text);
            assert!(
                served.contains(&sha),
                "stored text is what was served: {text:?}"
            );
            let (status, receipt) = stack
                .get(&format!(
                    "/api/v1/executions/{}/receipt",
                    e["id"].as_str().unwrap()
                ))
                .await;
            assert_eq!(status, 200, "{receipt}");
            assert_eq!(receipt["response_sha256"], sha.as_str(), "{receipt}");
        }
        stack.shutdown().await;
    }
);
