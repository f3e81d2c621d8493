//! The `beacon-sim` binary: the machine-readable `listening on` line, a real call against
//! it, and exit code 64 for flag values that make no sense.

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
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
}
