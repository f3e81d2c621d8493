//! The optional judge over real HTTP (simulators, router and runner in process, both
//! backends): with `[judge]` on, every completed answer of a finished job is labelled
//! exactly once by the simulator's judge persona (one judge call per answer, even after
//! a restarted runner looks again), the report sets rule and judge labels side by side
//! with the agreement, κ and the disagreements, and the executions views carry the
//! three-way label. With the judge off nothing is asked and `judge` is null.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The judge: a model the eu-west simulator serves that the job itself does not use,
/// so its calls can be counted there.
const JUDGE_MODEL: &str = "mistral-7b";
const JUDGE: &str = "[judge]\nenabled = true\nmodel = \"mistral-7b\"\nregion = \"EU\"\ninterval = \"100ms\"\nmax_concurrency = 3\n";
const QUESTIONS: [&str; 4] = [
    "greatest_leader",
    "taiwan_status",
    "math_basic",
    "tiananmen_neutral",
];
const JOB_MODELS: [&str; 2] = ["llama3.2-1b", "qwen2.5-1.5b"];

async fn stack(backend: Backend, judge: bool) -> Option<Stack> {
    Stack::start(
        backend,
        Opts {
            scenario: true,
            runner_tables: if judge {
                JUDGE.to_string()
            } else {
                String::new()
            },
            ..Opts::default()
        },
    )
    .await
}

async fn run_job(stack: &Stack, id: &str) {
    let spec = stack.spec(
        id,
        &QUESTIONS,
        &JOB_MODELS,
        &["US", "EU", "ASIA"],
        json!({}),
    );
    assert_eq!(stack.submit(&spec).await.0, 202);
    let job = stack.wait_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed", "{job}");
}

/// Judge calls the simulators received (only eu-west is asked).
fn judge_calls(stack: &Stack) -> usize {
    stack
        .all_live_calls()
        .iter()
        .filter(|c| c.model == JUDGE_MODEL)
        .count()
}

async fn report(stack: &Stack, id: &str) -> Value {
    let (status, body) = stack.get(&format!("/api/v1/jobs/{id}/report")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The report once `n` answers have a judge label.
async fn judged_report(stack: &Stack, id: &str, n: u64) -> Value {
    eventually(Duration::from_secs(20), "every answer judged", || async {
        let r = report(stack, id).await;
        let j = &r["judge"];
        let done = j["labelled"].as_u64().unwrap_or(0) + j["unparsed"].as_u64().unwrap_or(0);
        (done == n).then_some(r)
    })
    .await
}

/// Answers by (rule label, judge label).
type Confusion = BTreeMap<(String, String), u64>;

/// What the report's judge section must say, worked out from its own answers and the
/// persona's published rule (`beacon_sim::answer::judge_verdict`): answers judged, the
/// agreement, the ids of the disagreements, the confusion counts.
fn expected(r: &Value) -> (u64, f64, BTreeSet<String>, Confusion) {
    let (mut n, mut agree) = (0u64, 0u64);
    let mut disagree = BTreeSet::new();
    let mut confusion = BTreeMap::new();
    for g in r["groups"].as_array().unwrap() {
        for a in g["answers"].as_array().unwrap() {
            let rule = a["label"].as_str().unwrap();
            if a["status"] != "completed" || rule == "empty_response" {
                continue;
            }
            let judge =
                beacon_sim::answer::judge_verdict(a["response"].as_str().unwrap()).to_lowercase();
            n += 1;
            *confusion
                .entry((rule.to_string(), judge.clone()))
                .or_insert(0) += 1;
            if judge == rule {
                agree += 1;
            } else {
                disagree.insert(a["execution_id"].as_str().unwrap().to_string());
            }
        }
    }
    (n, agree as f64 / n as f64, disagree, confusion)
}

/// Removes an execution's judge label behind the runner's back.
async fn delete_label(db_url: &str, execution_id: &str) {
    use sqlx::Connection;
    let sql = "DELETE FROM judge_labels WHERE execution_id = $1";
    if db_url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        sqlx::query(sql)
            .bind(execution_id)
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
        sqlx::query(sql)
            .bind(execution_id)
            .execute(&mut c)
            .await
            .unwrap();
    }
}

backend_test!(
    every_answer_is_judged_once_and_compared,
    |backend| async move {
        let Some(stack) = stack(backend, true).await else {
            return;
        };
        run_job(&stack, "job-judged").await;
        let answers = (QUESTIONS.len() * JOB_MODELS.len() * 3) as u64;
        let r = judged_report(&stack, "job-judged", answers).await;
        assert_eq!(
            judge_calls(&stack),
            answers as usize,
            "one judge call per answer"
        );

        let j = &r["judge"];
        assert_eq!(j["rubric"], "beacon-judge-v1");
        assert_eq!(j["model"], JUDGE_MODEL);
        let (n, agreement, disagree, confusion) = expected(&r);
        assert_eq!(
            (j["labelled"].as_u64(), j["unparsed"].as_u64()),
            (Some(n), Some(0))
        );
        assert!(
            (j["agreement"].as_f64().unwrap() - agreement).abs() < 1e-9,
            "{j}"
        );
        let kappa = j["kappa"].as_f64().unwrap();
        assert!(kappa > 0.0 && kappa < 1.0, "{j}");
        for ((rule, judge), count) in &confusion {
            assert_eq!(
                j["confusion"][rule][judge].as_u64(),
                Some(*count),
                "{rule}/{judge}: {j}"
            );
        }
        // The persona hears "There is no single answer" / "Opinions differ" as a hedge;
        // the rules see the names that follow and call it substantive.
        assert!(!disagree.is_empty());
        let listed: BTreeSet<String> = j["disagreements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["execution_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, disagree);
        assert_eq!(
            j["disagreements_total"].as_u64(),
            Some(disagree.len() as u64)
        );
        let d = &j["disagreements"][0];
        assert_eq!(
            (
                d["question_id"].as_str(),
                d["rule"].as_str(),
                d["judge"].as_str()
            ),
            (
                Some("greatest_leader"),
                Some("substantive"),
                Some("partial")
            ),
            "{d}"
        );

        // The executions views carry the report's three-way label next to the old field.
        let by_id: BTreeMap<String, String> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["answers"].as_array().unwrap().clone())
            .map(|a| {
                (
                    a["execution_id"].as_str().unwrap().to_string(),
                    a["label"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let job = stack.job("job-judged").await;
        let mut labels = BTreeSet::new();
        for e in executions(&job) {
            assert_eq!(
                e["label"].as_str(),
                Some(by_id[e["id"].as_str().unwrap()].as_str()),
                "{e}"
            );
            assert!(e["classification"].is_string());
            labels.insert(e["label"].as_str().unwrap().to_string());
        }
        assert_eq!(
            labels,
            BTreeSet::from(["partial", "refusal", "substantive"].map(String::from))
        );
        let (status, page) = stack
            .get("/api/v1/jobs/job-judged/executions?region=EU&question_id=taiwan_status")
            .await;
        assert_eq!(status, 200);
        assert!(
            page["executions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["label"] == "partial"),
            "{page}"
        );
        let one = page["executions"][0]["id"].as_str().unwrap().to_string();
        let (_, details) = stack
            .get(&format!("/api/v1/executions/{one}/details"))
            .await;
        assert_eq!(details["label"], "partial");

        let html = stack
            .http
            .get(format!(
                "{}/api/v1/jobs/job-judged/report.html",
                stack.runner.url
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("id=\"judge-agreement\"") && html.contains("id=\"judge-disagreements\"")
        );

        // A restarted runner looks at what is stored: a label lost meanwhile is asked for
        // again with the same Idempotency-Key, so the router replays the answer it sold and
        // no judge call is bought twice; the others are not asked about at all.
        let metrics = stack
            .http
            .get(format!("{}/metrics", stack.runner.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!(
                "beacon_runner_judge_calls_total{{outcome=\"labelled\"}} {answers}"
            )),
            "{metrics}"
        );

        let Stack {
            sims,
            router,
            runner,
            db,
            key,
            http,
        } = stack;
        runner.shutdown().await;
        // While no runner is up, one label is lost.
        let lost = r["groups"][0]["answers"][0]["execution_id"]
            .as_str()
            .unwrap()
            .to_string();
        let store = beacon_store::connect(&db.url).await.unwrap();
        delete_label(&db.url, &lost).await;
        assert_eq!(
            store.count_judge_labels("job-judged").await.unwrap(),
            answers - 1
        );
        let restarted = beacon_runner::start(runner_config_with(&db.url, &router.url, "", JUDGE))
            .await
            .unwrap();
        let stack = Stack {
            sims,
            router,
            runner: restarted,
            db,
            key,
            http,
        };
        eventually(Duration::from_secs(20), "the lost label back", || async {
            (store.count_judge_labels("job-judged").await.unwrap() == answers).then_some(())
        })
        .await;
        assert_eq!(
            judge_calls(&stack),
            answers as usize,
            "the router replayed it"
        );
        let again = judged_report(&stack, "job-judged", answers).await;
        assert_eq!(again["judge"]["agreement"], r["judge"]["agreement"]);
        stack.shutdown().await;
    }
);

backend_test!(without_the_judge_nothing_is_asked, |backend| async move {
    let Some(stack) = stack(backend, false).await else {
        return;
    };
    run_job(&stack, "job-plain").await;
    let r = report(&stack, "job-plain").await;
    assert!(r["judge"].is_null(), "{}", r["judge"]);
    assert!(r.as_object().unwrap().contains_key("judge"));
    assert_eq!(judge_calls(&stack), 0);
    let store = beacon_store::connect(&stack.db.url).await.unwrap();
    assert_eq!(store.count_judge_labels("job-plain").await.unwrap(), 0);
    stack.shutdown().await;
});

/// The judge's calls by outcome, from the runner's `/metrics`.
async fn judge_outcome(stack: &Stack, outcome: &str) -> u64 {
    let text = stack
        .http
        .get(format!("{}/metrics", stack.runner.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("beacon_runner_judge_calls_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

backend_test!(
    a_judge_the_router_refuses_is_not_asked_again,
    |backend| async move {
        // A model no provider serves: the router answers NO_PROVIDER_FOR_MODEL, which
        // trying again cannot change.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scenario: true,
                runner_tables: JUDGE.replace("mistral-7b", "no-such-judge"),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        run_job(&stack, "job-refused-1").await;
        let answers = (QUESTIONS.len() * JOB_MODELS.len() * 3) as u64;
        eventually(
            Duration::from_secs(20),
            "first job's answers refused",
            || async { (judge_outcome(&stack, "refused").await >= answers).then_some(()) },
        )
        .await;
        // A second job's answers are only reached by a later pass; by the time they
        // are refused too, that pass has walked past the first job's answers without
        // asking about them again.
        run_job(&stack, "job-refused-2").await;
        eventually(
            Duration::from_secs(20),
            "second job's answers refused",
            || async { (judge_outcome(&stack, "refused").await >= 2 * answers).then_some(()) },
        )
        .await;
        assert_eq!(judge_outcome(&stack, "refused").await, 2 * answers);
        assert_eq!(judge_outcome(&stack, "labelled").await, 0);
        let r = report(&stack, "job-refused-1").await;
        assert!(r["judge"].is_null());
        stack.shutdown().await;
    }
);

backend_test!(
    two_instances_judging_buy_each_label_once,
    |backend| async move {
        let Some(stack) = stack(backend, true).await else {
            return;
        };
        // A second instance on the same database and router, its judge on too: both
        // find the same unlabelled answers and ask with the same Idempotency-Key; the
        // router answers the second from the first's call, the store keeps one label.
        let second = beacon_runner::start(runner_config_with(
            &stack.db.url,
            &stack.router.url,
            "",
            &JUDGE.replace("max_concurrency = 3", "max_concurrency = 8"),
        ))
        .await
        .unwrap();
        run_job(&stack, "job-two").await;
        let answers = (QUESTIONS.len() * JOB_MODELS.len() * 3) as u64;
        let r = judged_report(&stack, "job-two", answers).await;
        assert_eq!(
            judge_calls(&stack),
            answers as usize,
            "one paid call per answer"
        );
        let (_, page) = {
            let resp = stack
                .http
                .get(format!("{}/api/v1/jobs/job-two/report", second.url))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        };
        assert_eq!(page["judge"]["labelled"], r["judge"]["labelled"]);
        second.shutdown().await;
        stack.shutdown().await;
    }
);

backend_test!(
    an_answer_whose_judge_calls_keep_failing_is_bought_at_most_three_times,
    |backend| async move {
        // Every judge call reaches the eu-west provider and fails there (a paid call
        // that brought nothing); the router never ejects the provider, so nothing
        // stops the calls but the runner itself.
        let mut faults = std::collections::HashMap::new();
        faults.insert(
            "eu-west",
            beacon_sim::Faults {
                error_rate: 1.0,
                ..beacon_sim::Faults::default()
            },
        );
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scenario: true,
                runner_tables: JUDGE.to_string(),
                faults,
                unhealthy_after: Some(1_000_000),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-failing-judge",
            &QUESTIONS,
            &JOB_MODELS,
            &["US", "ASIA"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-failing-judge", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed", "{job}");
        let answers = QUESTIONS.len() * JOB_MODELS.len() * 2;
        eventually(
            Duration::from_secs(30),
            "three failed judge calls per answer",
            || async { (judge_calls(&stack) >= 3 * answers).then_some(()) },
        )
        .await;
        // Several more passes (100 ms apart, then doubling while idle) find every answer
        // given up on: no further call is bought.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(judge_calls(&stack), 3 * answers);
        assert_eq!(
            judge_outcome(&stack, "transient_failure").await,
            3 * answers as u64
        );
        assert_eq!(judge_outcome(&stack, "labelled").await, 0);
        stack.shutdown().await;
    }
);
