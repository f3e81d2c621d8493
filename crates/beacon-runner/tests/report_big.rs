//! Reports of big jobs (issue 11): a 1,440-execution job (40 inline questions × 3
//! models × 3 regions × 4 runs) on both backends. Six concurrent report requests are
//! computed once (`beacon_runner_report_computations_total`); the JSON report lists
//! the first 1,000 answers and says so; the JSON lines export has every execution; the
//! page shows a few groups at a time with working links between pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUESTIONS: usize = 40;
const RUNS: usize = 4;
const TOTAL: usize = QUESTIONS * 3 * 3 * RUNS;

async fn text(stack: &Stack, path: &str) -> (u16, String, String) {
    let resp = stack
        .http
        .get(format!("{}{path}", stack.runner.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, resp.text().await.unwrap())
}

fn computations(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("beacon_runner_report_computations_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

backend_test!(
    a_big_jobs_report_is_computed_once_summarised_exported_and_paginated,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        let job = format!("job-big-report-{backend:?}").to_lowercase();
        let questions: Vec<Value> = (0..QUESTIONS)
            .map(|i| json!({"id": format!("q_{i:02}"), "text": format!("Inline question number {i}?"), "category": "custom"}))
            .collect();
        let spec = stack.spec(
            &job,
            &[],
            &MODELS,
            &REGIONS,
            json!({"questions": questions, "runs": RUNS}),
        );
        let (status, body) = stack.submit(&spec).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["total_executions"], TOTAL as u64, "{body}");
        let done = stack.wait_terminal(&job, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed");

        // Six concurrent requests for the (uncached) report: one computation.
        let (_, _, before) = text(&stack, "/metrics").await;
        let path = format!("/api/v1/jobs/{job}/report");
        let gets = (0..6).map(|_| stack.get(&path));
        let answers = futures_util::future::join_all(gets).await;
        for (status, r) in &answers {
            assert_eq!(*status, 200, "{r}");
            assert_eq!(r["generated_at"], answers[0].1["generated_at"]);
        }
        let (status, _, _) = text(&stack, &format!("/api/v1/jobs/{job}/report.html")).await;
        assert_eq!(status, 200);
        let (_, _, after) = text(&stack, "/metrics").await;
        assert_eq!(
            computations(&after) - computations(&before),
            1,
            "one computation for six JSON requests and a page:\n{after}"
        );

        // The JSON report: every group with its numbers, the first 1,000 answers.
        let report = &answers[0].1;
        assert_eq!(report["groups"].as_array().unwrap().len(), QUESTIONS * 3);
        assert_eq!(report["answers_total"], TOTAL as u64);
        assert_eq!(report["answers_included"], 1000);
        assert_eq!(report["answers_truncated"], true);
        let listed: usize = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["answers"].as_array().unwrap().len())
            .sum();
        assert_eq!(listed, 1000);
        let last = report["groups"].as_array().unwrap().last().unwrap();
        assert_eq!(last["answers_total"], 3 * RUNS as u64);
        assert_eq!(last["tally"]["us-east"]["completed"], RUNS as u64);
        assert_eq!(report["analysis"]["coverage"], 1.0);
        let export = report["answers_export"].as_str().unwrap().to_string();
        assert_eq!(export, format!("/api/v1/jobs/{job}/report/answers.jsonl"));

        // The export: every execution once, with its answer.
        let (status, ctype, body) = text(&stack, &export).await;
        assert_eq!(status, 200);
        assert_eq!(ctype, "application/x-ndjson");
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), TOTAL);
        let ids: BTreeSet<&str> = lines
            .iter()
            .map(|l| l["execution_id"].as_str().unwrap())
            .collect();
        let stored: BTreeSet<String> = executions(&stack.job(&job).await)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), TOTAL);
        assert_eq!(
            ids,
            stored.iter().map(String::as_str).collect::<BTreeSet<_>>()
        );
        assert!(lines.iter().all(|l| {
            l["status"] == "completed"
                && l["response"].as_str().is_some_and(|r| !r.is_empty())
                && l["question_id"]
                    .as_str()
                    .is_some_and(|q| q.starts_with("q_"))
        }));
        let (status, _, _) = text(&stack, "/api/v1/jobs/nope/report/answers.jsonl").await;
        assert_eq!(status, 404);

        // The page: five groups a page, 24 pages, each page about the same size.
        let page = |n: usize| format!("/api/v1/jobs/{job}/report.html?page={n}&per_page=5");
        let (status, _, first) = text(&stack, &page(1)).await;
        assert_eq!(status, 200);
        assert_eq!(first.matches("<article class=\"card group\"").count(), 5);
        assert!(first.contains("page 1 of 24"), "{first}");
        assert!(first.contains("href=\"?page=2&amp;per_page=5\""));
        assert!(first.contains("href=\"?page=24&amp;per_page=5\""));
        // Heat-map cells of groups on other pages link to their page.
        assert!(first.contains("href=\"?page=24&amp;per_page=5#group-q_39-"));
        let (_, _, whole) = text(
            &stack,
            &format!("/api/v1/jobs/{job}/report.html?per_page=100"),
        )
        .await;
        assert!(
            first.len() * 3 < whole.len(),
            "{} vs {}",
            first.len(),
            whole.len()
        );
        let (status, _, second) = text(&stack, &page(2)).await;
        assert_eq!(status, 200);
        assert!(
            second.contains("id=\"group-q_02-mistral-7b\""),
            "groups 6-10"
        );
        assert!(!first.contains("id=\"group-q_02-mistral-7b\""));
        // Answers beyond the report's first 1,000 come from the store.
        let (status, _, tail) = text(&stack, &page(24)).await;
        assert_eq!(status, 200);
        assert_eq!(tail.matches("class=\"answer ").count(), 5 * 3 * RUNS);
        assert!(tail.contains("href=\"?page=23&amp;per_page=5\""));
        for bad in ["?page=0", "?per_page=0", "?page=x", "?per_page=101"] {
            let (status, _, body) =
                text(&stack, &format!("/api/v1/jobs/{job}/report.html{bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body.contains("INVALID_QUERY"));
        }
        let (status, _, _) = text(&stack, &page(25)).await;
        assert_eq!(status, 404);
        stack.shutdown().await;
    }
);
