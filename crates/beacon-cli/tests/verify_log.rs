//! `beacon verify` and the transparency log, the real binary against real services:
//! every receipt is found in the log and its proof verifies; a proof with a wrong
//! hash, a root the runner does not publish, an entry missing from the log, and a
//! receipt changed behind the log's back each fail (exit 1) naming the execution.
//! A proxy in front of the runner plays the lying log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Every proof's first audit-path hash has one bit flipped.
    FlippedPath,
    /// The published root is another hash.
    OtherRoot,
    /// No execution is in the log.
    NothingLogged,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    lie: Lie,
    http: reqwest::Client,
}

async fn forward(State(p): State<Proxy>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |x| x.as_str());
    let resp = p
        .http
        .get(format!("{}{path}", p.upstream))
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let mut body: Value = resp.json().await.unwrap_or(Value::Null);
    match (p.lie, uri.path()) {
        (Lie::FlippedPath, "/api/v1/transparency/proof") => {
            let first = body["audit_path"][0].as_str().unwrap().to_string();
            let flipped = if first.starts_with('0') { "1" } else { "0" };
            body["audit_path"][0] = json!(format!("{flipped}{}", &first[1..]));
        }
        (Lie::OtherRoot, "/api/v1/transparency/root") => {
            body["root"] = json!("ab".repeat(32));
        }
        (Lie::NothingLogged, "/api/v1/transparency/proof") => {
            let gone = json!({"error": "404: not in the log", "error_code": "NOT_FOUND"});
            return (StatusCode::NOT_FOUND, axum::Json(gone)).into_response();
        }
        _ => {}
    }
    (status, axum::Json(body)).into_response()
}

async fn proxy(upstream: &str, lie: Lie) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(forward).with_state(Proxy {
        upstream: upstream.to_string(),
        lie,
        http: reqwest::Client::new(),
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn verify(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_beacon"));
    cmd.env_remove("BEACON_RUNNER_URL").arg("verify").args(args);
    let out: Output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_every_receipt_against_the_transparency_log() {
    let stack = common::EuStack::start("listen = \"127.0.0.1:0\"\n[signatures]\npolicy = \"optional\"\n[scheduler]\npoll_interval = \"50ms\"\n").await;
    let common::EuStack {
        tmp: _,
        db_url,
        sim,
        router,
        runner,
    } = stack;
    let url = runner.url.clone();
    let http = reqwest::Client::new();
    let spec = json!({"id": "log-job", "version": "v1", "questions": ["math_basic", "taiwan_status"],
                      "models": ["llama3.2-1b", "mistral-7b"], "constraints": {"regions": ["EU"]}});
    let resp = http
        .post(format!("{url}/api/v1/jobs"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job: Value = http
            .get(format!("{url}/api/v1/jobs/log-job"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Right after the job ends (the log may still be catching up): all four in it.
    let (code, text) = verify(&["log-job", "--runner", &url]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("4 receipts verified, 0 problems")
            && text.contains("4 in the transparency log, 0 not"),
        "{text}"
    );
    let (code, text) = verify(&["--json", "log-job", "--runner", &url]).await;
    assert_eq!(code, Some(0), "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["log"]["logged"], 4, "{report}");
    assert_eq!(report["log"]["tree_size"], 4, "{report}");
    for e in report["log"]["executions"].as_array().unwrap() {
        assert_eq!(e["log"], "ok", "{e}");
    }

    // A lying log: every execution is named, exit 1.
    for (lie, says) in [
        (Lie::FlippedPath, "inclusion proof fails"),
        (Lie::OtherRoot, "but the runner publishes"),
        (Lie::NothingLogged, "not in the transparency log"),
    ] {
        let liar = proxy(&url, lie).await;
        let (code, text) = verify(&["log-job", "--runner", &liar, "--log-wait", "1"]).await;
        assert_eq!(code, Some(1), "{text}");
        let fails: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("FAIL execution"))
            .collect();
        assert_eq!(fails.len(), 4, "{text}");
        assert!(fails.iter().all(|l| l.contains(says)), "{text}");
    }
    // Unless the log is not asked about.
    let liar = proxy(&url, Lie::NothingLogged).await;
    let (code, text) = verify(&["log-job", "--runner", &liar, "--no-log"]).await;
    assert_eq!(code, Some(0), "{text}");

    // A receipt rewritten behind the log's back (the queueing trigger dropped first,
    // as a restored backup or a direct edit would): its signature and the log both
    // say so.
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (victim,): (String,) =
        sqlx::query_as("SELECT id FROM executions WHERE job_id = 'log-job' ORDER BY seq LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("DROP TRIGGER executions_receipt_written")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE executions SET receipt = json_set(receipt, '$.provider_id', 'elsewhere') WHERE id = ?")
        .bind(&victim)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (code, text) = verify(&["log-job", "--runner", &url]).await;
    assert_eq!(code, Some(1), "{text}");
    let fails: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("FAIL execution"))
        .collect();
    assert_eq!(fails.len(), 2, "{text}");
    assert!(fails.iter().all(|l| l.contains(&victim)), "{text}");
    assert!(
        text.contains("signature") && text.contains("the log holds another receipt"),
        "{text}"
    );

    tokio::time::timeout(Duration::from_secs(10), runner.shutdown())
        .await
        .unwrap();
    router.shutdown().await;
    sim.shutdown().await;
}
