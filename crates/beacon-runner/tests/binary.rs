//! Acceptance 8: the binary refuses to start without a router URL (exit 64, naming
//! ROUTER_URL) and starts with only the old name HYBRID_BASE.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn runner() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_beacon-runner"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn no_router_url_exits_64_naming_the_key() {
    let out = runner().output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ROUTER_URL"), "{err}");
    let out = runner()
        .env("ROUTER_URL", "http://a:1")
        .env("HYBRID_BASE", "http://b:2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROUTER_URL/HYBRID_BASE"));
}

#[test]
fn the_old_name_hybrid_base_is_enough_to_start() {
    let dir = std::env::temp_dir().join(format!("beacon-runner-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = runner()
        .env("HYBRID_BASE", "http://127.0.0.1:9")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/runner.db", dir.display()),
        )
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the runner binary with `env` (plus a temp SQLite database and `RUST_LOG=info`)
/// until its `listening on` line, stops it, and returns what it logged meanwhile.
fn startup_log(name: &str, env: &[(&str, &str)]) -> String {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("beacon-runner-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = runner();
    cmd.env("RUST_LOG", "info")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/runner.db", dir.display()),
        )
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Start-up lines (the configuration summary among them) come before `listening on`.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    log
}

/// Issue 11 item 7: the startup log's configuration summary carries no secret, whatever
/// form the router URL gives it (user, password, query token) and whatever token is set.
#[test]
fn the_startup_log_shows_no_secret() {
    let log = startup_log(
        "secrets",
        &[
            (
                "ROUTER_URL",
                "http://alice:pa55w0rd@127.0.0.1:9/base?token=t0ken-in-query",
            ),
            ("ROUTER_TOKEN", "router-bearer-0123456789"),
            ("RUNNER_CONTROL_TOKEN", "control-s3cret"),
            ("RUNNER_ADMIN_TOKEN", "admin-s3cret"),
        ],
    );
    assert!(
        log.contains("configuration"),
        "the summary is logged: {log}"
    );
    assert!(
        log.contains("127.0.0.1:9"),
        "the router's host is shown: {log}"
    );
    for s in [
        "alice",
        "pa55w0rd",
        "t0ken-in-query",
        "router-bearer-0123456789",
        "control-s3cret",
        "admin-s3cret",
    ] {
        assert!(!log.contains(s), "{s} in the startup log: {log}");
    }
}

/// `LOG_FORMAT=json`: every log line is one JSON object (level, message fields); an
/// unknown format is a configuration error naming the variable, not a silent default.
#[test]
fn log_format_json_writes_one_object_per_line_and_typos_are_refused() {
    let out = runner()
        .env("ROUTER_URL", "http://127.0.0.1:9")
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_FORMAT"));

    let log = startup_log(
        "json",
        &[("ROUTER_URL", "http://127.0.0.1:9"), ("LOG_FORMAT", "json")],
    );
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the runner logged at start");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

/// Trace export settings are checked at start like the rest: an OTLP endpoint that is
/// not an http(s) URL, or a protocol other than http/protobuf, exits 64 naming the
/// variable instead of exporting nowhere.
#[test]
fn bad_trace_export_settings_exit_64_naming_the_variable() {
    for (key, value, extra) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", None),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            Some(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")),
        ),
    ] {
        let mut c = runner();
        c.env("ROUTER_URL", "http://127.0.0.1:9").env(key, value);
        if let Some((k, v)) = extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{key}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{err}");
    }
}
