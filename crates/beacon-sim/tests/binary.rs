//! The `beacon-sim` binary: the machine-readable `listening on` line, a real call against
//! it, a 200 MB answer served from little memory, and exit code 64 for flag values that
//! make no sense.

// Test code: panicking on an unexpected error is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_beacon-sim");

#[tokio::test]
async fn prints_listening_line_first_and_serves() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--region",
            "eu-west",
            "--scenario",
            "demo",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let result = async {
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line was {line:?}"))
            .to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
            "{url}"
        );
        let body: Value = reqwest::Client::new()
            .post(format!("{url}/"))
            .json(
                &json!({"model": "mistral-7b", "prompt": "Is Taiwan a country?", "temperature": 0}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["region"], "eu-west");
        assert_eq!(body["receipt"]["provenance"]["provider"], "beacon-sim");
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    result
}

/// Starts the binary with `args` and returns it with its base URL.
async fn spawn(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line was {line:?}"))
        .to_string();
    (child, url)
}

/// Peak resident memory of a process, from `/proc/<pid>/status` (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_200_mb_answer_is_streamed_from_little_memory() {
    const SIZE: u64 = 200_000_000;
    let (mut child, url) =
        spawn(&["--region", "eu-west", "--oversize-bytes", &SIZE.to_string()]).await;
    let result = async {
        let mut resp = reqwest::Client::new()
            .post(format!("{url}/"))
            .json(
                &json!({"model": "mistral-7b", "prompt": "Everything, please.", "temperature": 0}),
            )
            .send()
            .await
            .unwrap();
        let declared = resp.content_length().unwrap();
        let mut read = 0u64;
        // Counted, not kept: the test must not hold 400 MB either.
        while let Some(chunk) = resp.chunk().await.unwrap() {
            read += chunk.len() as u64;
        }
        assert_eq!(read, declared);
        assert!(read > 2 * SIZE, "both copies of the text: {read}");
        let stats: Value = reqwest::get(format!("{url}/__sim/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let call = &stats["calls"][0];
        assert_eq!(call["response_bytes"], SIZE);
        assert_eq!(call["hung_up_mid_body"], false);
        assert!(call["response_sha256"].is_string(), "{call}");
        if let Some(peak) = peak_rss_kib(child.id()) {
            // Building the body in memory would take 400 MB at least.
            assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
        }
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    result
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut child = Command::new(BIN)
        .args(["--region", "us-east"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(line.starts_with("listening on http://"), "{line:?}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn nonsense_flag_values_exit_64_with_a_clear_message() {
    for (args, needle) in [
        (
            &["--region", "eu-west", "--error-rate", "1.5"][..],
            "--error-rate",
        ),
        (&["--region", "Mars Base"][..], "--region"),
        (
            &["--region", "eu-west", "--latency", "fast"][..],
            "--latency",
        ),
        (
            &["--region", "eu-west", "--oversize-bytes", "2000000000"][..],
            "--oversize-bytes",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
}
