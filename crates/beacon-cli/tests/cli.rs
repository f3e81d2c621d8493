//! The real `beacon` binary against real services: the demo runs to the end; doctor
//! fails on a broken region and passes on a healthy one; submit then verify succeeds,
//! and a stored answer altered in the database makes verify fail naming the execution.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use beacon_store::testing::TempPath;
use serde_json::json;

fn beacon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_beacon"));
    c.env_remove("BEACON_RUNNER_URL")
        .env_remove("BEACON_ROUTER_URL")
        .env_remove("RUNNER_ADMIN_TOKEN")
        .env_remove("BEACON_KEY_FILE")
        .env_remove("CORS_ORIGINS");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn demo_runs_to_the_end_and_exits_0() {
    let dir = TempPath::new();
    let out = run(beacon()
        .args(["demo", "--latency-ms", "50", "--dir"])
        .arg(dir.dir()));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("completed — 72 of 72 executions completed"),
        "{all}"
    );
    assert!(
        all.contains("HIGH RISK") && all.contains("xASIA"),
        "the analysis shows the designed difference: {all}"
    );
    assert!(dir.dir().join("beacon.db").exists());
    let page = std::fs::read_dir(dir.dir())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "html"))
        .expect("the demo saved the report page");
    assert!(
        all.contains(&page.path().display().to_string()),
        "and says where: {all}"
    );
}

/// A `beacon demo --serve` child, with the lines it printed up to the doctor hint.
struct Served {
    child: Child,
    runner: String,
    doctor_args: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, faults: Option<&str>) -> Served {
    serve_with(dir, faults, &[])
}

fn serve_with(dir: &Path, faults: Option<&str>, env: &[(&str, &str)]) -> Served {
    let mut cmd = beacon();
    cmd.args(["demo", "--serve", "--latency-ms", "50", "--dir"])
        .arg(dir)
        .envs(env.iter().copied());
    if let Some(f) = faults {
        cmd.args(["--faults", f]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut runner, mut doctor_args) = (String::new(), Vec::new());
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("export BEACON_RUNNER_URL=") {
            runner = url.to_string();
        }
        if let Some(rest) = line.trim().strip_prefix("beacon doctor ") {
            doctor_args = rest.split_whitespace().map(str::to_string).collect();
            break;
        }
    }
    assert!(
        !runner.is_empty() && !doctor_args.is_empty(),
        "demo --serve printed its URLs"
    );
    // Keep reading what the demo prints later (its job's progress and result): with
    // the pipe closed, its next line would fail on a broken pipe and end it mid-test.
    std::thread::spawn(move || stdout.for_each(drop));
    Served {
        child,
        runner,
        doctor_args,
    }
}

#[test]
fn doctor_fails_on_a_broken_region_and_passes_on_a_healthy_demo() {
    let dir = TempPath::new();
    let broken = serve(dir.dir(), Some("eu-west:inference_broken=true"));
    let out = run(beacon()
        .arg("doctor")
        .arg("--runner")
        .arg(&broken.runner)
        .args(&broken.doctor_args));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let fail_line = all
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("demo-eu-west"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        fail_line.contains("404") && fail_line.contains("modal-http: invalid function call"),
        "{fail_line}"
    );
    drop(broken);

    let healthy_dir = TempPath::new();
    let healthy = serve(healthy_dir.dir(), None);
    let out = run(beacon()
        .arg("doctor")
        .arg("--runner")
        .arg(&healthy.runner)
        .args(&healthy.doctor_args));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(beacon()
        .args(["--json", "doctor", "--runner"])
        .arg(&healthy.runner)
        .args(&healthy.doctor_args));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{}", text(&out));
}

#[test]
fn doctor_needs_only_the_runner_url_to_fail_a_broken_region() {
    let dir = TempPath::new();
    let broken = serve(dir.dir(), Some("eu-west:inference_broken=true"));
    // No --router, no --token: what a new user types.
    let out = run(beacon().arg("doctor").arg("--runner").arg(&broken.runner));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("not checked"), "{all}");
    let fails: Vec<&str> = all.lines().filter(|l| l.starts_with("FAIL")).collect();
    // The region with no routable provider, naming the provider and its 404.
    assert!(
        fails.iter().any(|l| l.contains("region eu-west")
            && l.contains("no routable provider")
            && l.contains("demo-eu-west")
            && l.contains("404")),
        "{all}"
    );
    // The region whose recent executions all failed, naming the failure code.
    assert!(
        fails
            .iter()
            .any(|l| l.contains("region eu-west recent executions")
                && l.contains("all ")
                && l.contains("_")),
        "{all}"
    );
    assert!(
        !fails
            .iter()
            .any(|l| l.contains("us-east") || l.contains("asia-pacific")),
        "only eu-west is broken: {all}"
    );
    drop(broken);

    let healthy_dir = TempPath::new();
    let healthy = serve(healthy_dir.dir(), None);
    let out = run(beacon().arg("doctor").arg("--runner").arg(&healthy.runner));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("not checked"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("ok") && l.contains("region eu-west recent executions")),
        "{all}"
    );
}

/// The `Access-Control-Allow-Origin` a preflight from `origin` gets.
async fn preflight(url: String, origin: &str, method: &str) -> Option<String> {
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_passes_cors_origins_to_runner_and_router() {
    let dir = TempPath::new();
    let portal = "https://portal.test";
    let served = serve_with(dir.dir(), None, &[("CORS_ORIGINS", portal)]);
    let router = served
        .doctor_args
        .iter()
        .skip_while(|a| *a != "--router")
        .nth(1)
        .cloned()
        .expect("the doctor line names the router");
    let runner_jobs = format!("{}/api/v1/jobs", served.runner);
    let router_health = format!("{router}/health");
    assert_eq!(
        preflight(runner_jobs.clone(), portal, "POST")
            .await
            .as_deref(),
        Some(portal)
    );
    assert_eq!(
        preflight(router_health.clone(), portal, "GET")
            .await
            .as_deref(),
        Some(portal)
    );
    // The allowlist replaced the local development defaults in both.
    for url in [runner_jobs, router_health] {
        assert_eq!(preflight(url, "http://localhost:5173", "GET").await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_then_verify_and_a_tampered_answer_is_named() {
    let stack =
        common::EuStack::start("listen = \"127.0.0.1:0\"\n[scheduler]\npoll_interval = \"50ms\"\n")
            .await;
    let common::EuStack {
        tmp,
        db_url,
        sim,
        router,
        runner,
    } = stack;

    let key: PathBuf = tmp.dir().join("me.key");
    let out = run(beacon().arg("keygen").arg("--out").arg(&key));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let spec_path = tmp.dir().join("job.json");
    let spec = json!({"id": "cli-job", "version": "v1", "questions": ["math_basic", "taiwan_status"],
                      "models": ["llama3.2-1b", "mistral-7b"], "constraints": {"regions": ["EU"]}});
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let runner_url = runner.url.clone();
    let submit = {
        let (key, spec_path, url) = (key.clone(), spec_path.clone(), runner_url.clone());
        tokio::task::spawn_blocking(move || {
            run(beacon()
                .arg("submit")
                .arg(&spec_path)
                .arg("--key")
                .arg(&key)
                .args(["--wait", "--runner", &url]))
        })
        .await
        .unwrap()
    };
    assert_eq!(submit.status.code(), Some(0), "{}", text(&submit));
    assert!(
        text(&submit).contains("completed — 4 of 4"),
        "{}",
        text(&submit)
    );

    let verify = |url: String| async move {
        tokio::task::spawn_blocking(move || {
            run(beacon().args(["verify", "cli-job", "--runner", &url]))
        })
        .await
        .unwrap()
    };
    let ok = verify(runner_url.clone()).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("4 receipts verified, 0 problems"),
        "{}",
        text(&ok)
    );

    // The report: terminal table and the HTML page written to a file.
    let html_path = tmp.dir().join("report.html");
    let report = tokio::task::spawn_blocking({
        let (url, html) = (runner_url.clone(), html_path.clone());
        move || {
            run(beacon()
                .args(["report", "cli-job", "--runner", &url, "--html"])
                .arg(&html))
        }
    })
    .await
    .unwrap();
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    assert!(
        text(&report).contains("narrative_divergence") && text(&report).contains("RISK"),
        "{}",
        text(&report)
    );
    let page = std::fs::read_to_string(&html_path).unwrap();
    assert!(page.to_lowercase().starts_with("<!doctype html") && page.contains("cli-job"));

    // Receipts signed by another key than the one required are refused.
    let stranger = beacon_core::signing::encode_public_key(
        &ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]).verifying_key(),
    );
    let wrong_key = tokio::task::spawn_blocking({
        let url = runner_url.clone();
        move || {
            run(beacon().args([
                "verify",
                "cli-job",
                "--runner",
                &url,
                "--public-key",
                &stranger,
            ]))
        }
    })
    .await
    .unwrap();
    assert_eq!(wrong_key.status.code(), Some(1));
    assert!(
        text(&wrong_key).contains("instead of the runner's key"),
        "{}",
        text(&wrong_key)
    );

    // Alter one stored answer behind the runner's back.
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (victim,): (String,) =
        sqlx::query_as("SELECT id FROM executions WHERE job_id = 'cli-job' ORDER BY seq LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE executions SET response = 'Nothing happened.' WHERE id = ?")
        .bind(&victim)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = verify(runner_url.clone()).await;
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let line = text(&bad)
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&victim) && line.contains("changed after signing"),
        "{line}"
    );

    // status, cancel on a finished job, and report also work against the same runner.
    let status = tokio::task::spawn_blocking({
        let url = runner_url.clone();
        move || run(beacon().args(["--json", "status", "cli-job", "--runner", &url]))
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["status"], "completed");
    let missing = tokio::task::spawn_blocking({
        let url = runner_url.clone();
        move || run(beacon().args(["status", "no-such-job", "--runner", &url]))
    })
    .await
    .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(5),
        "a refused request has its own exit code"
    );
    tokio::time::timeout(Duration::from_secs(10), runner.shutdown())
        .await
        .unwrap();
    router.shutdown().await;
    sim.shutdown().await;
}
