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
