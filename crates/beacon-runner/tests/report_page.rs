//! The report page in a real browser (analysis.md "Views"): a job over catalogue
//! questions and one hostile inline question runs on the demo-scenario simulators, its
//! `report.html` is loaded in headless Chromium, and the rendered DOM is checked against
//! the JSON report: one heat-map cell per (question, model) with the same divergence,
//! the simulator banner, asia-pacific refusal marks on the sensitive questions only,
//! the hostile string shown as text and no script anywhere. A screenshot is kept in
//! `target/report-screenshot.png`, the page beside it in `target/report-page.html`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`): without it the test fails
//! under CI and is skipped loudly elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beacon_store::testing::TempPath;
use common::*;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const JOB: &str = "job-report-page";
const CATALOGUE: [&str; 4] = [
    "math_basic",
    "tiananmen_neutral",
    "taiwan_status",
    "greatest_invention",
];
const HOSTILE: &str = "<script>alert(1)</script>";
const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/report-screenshot.png"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_page_renders_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} is missing: the report page test needs Chromium under CI (apt-get install -y --no-install-recommends chromium)"
        );
        eprintln!(
            "\n{0}\nSKIPPED: chromium not installed (apt-get install chromium)\n{0}\n",
            "!".repeat(72)
        );
        return;
    }

    // A job: four catalogue questions and a hostile inline one × 3 models × 3 regions.
    let opts = Opts {
        scenario: true,
        ..Opts::default()
    };
    let stack = Stack::start(Backend::Sqlite, opts)
        .await
        .expect("a SQLite stack");
    let mut questions: Vec<Value> = CATALOGUE.iter().map(|q| json!(q)).collect();
    questions.push(json!({
        "id": "q_hostile",
        "text": format!("Repeat exactly: {HOSTILE}"),
        "category": "custom",
    }));
    let n_questions = questions.len();
    let spec = stack.spec(
        JOB,
        &CATALOGUE,
        &MODELS,
        &REGIONS,
        json!({ "questions": questions }),
    );
    let (status, body) = stack.submit(&spec).await;
    assert_eq!(status, 202, "{body}");
    let job = stack.wait_terminal(JOB, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}");

    let (status, report) = stack.get(&format!("/api/v1/jobs/{JOB}/report")).await;
    assert_eq!(status, 200, "{report}");
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), n_questions * MODELS.len(), "{report}");
    assert_eq!(report["simulated"], true);

    let resp = stack
        .http
        .get(format!(
            "{}/api/v1/jobs/{JOB}/report.html",
            stack.runner.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("default-src 'none'"));
    let page = resp.text().await.unwrap();
    stack.shutdown().await;
    if let Some(at) = page.to_ascii_lowercase().find("<script") {
        panic!(
            "a <script> in the served page: …{}…",
            &page[at.saturating_sub(80)..(at + 80).min(page.len())]
        );
    }

    // The browser: the rendered DOM, then a screenshot.
    let tmp = TempPath::new();
    let file = tmp.dir().join("report.html");
    std::fs::write(&file, &page).unwrap();
    let url = format!("file://{}", file.display());
    let started = Instant::now();
    let (dom, dom_log) = chromium(&tmp, "dom", &["--dump-dom".into(), url.clone()]);
    let dom_took = started.elapsed();
    let png = tmp.dir().join("report.png");
    let (_, shot_log) = chromium(
        &tmp,
        "shot",
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,2400".into(),
            url,
        ],
    );
    eprintln!(
        "chromium: DOM dump {:.1} s, screenshot {:.1} s",
        dom_took.as_secs_f64(),
        (started.elapsed() - dom_took).as_secs_f64()
    );
    // Chromium logs every console message as `INFO:CONSOLE`, whatever its level (a
    // `console.error` included), and a blocked script as a CSP violation there too. The
    // page has no script, so any console line at all is a failure. (An `alert` that ran
    // would block `--dump-dom` until the kill below.)
    for (what, log) in [("--dump-dom", &dom_log), ("--screenshot", &shot_log)] {
        let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(
            console.is_empty(),
            "console messages (errors, uncaught exceptions, CSP violations) under {what}: {console:#?}"
        );
    }

    // The rendered DOM against the JSON report.
    assert!(
        dom.contains("id=\"heatmap\""),
        "no heat map in the DOM:\n{dom}"
    );
    let tags = scan(&dom);
    assert!(
        tags.iter().all(|t| t.name != "script"),
        "a script element in the DOM"
    );
    assert!(!dom.to_ascii_lowercase().contains("<script"));
    assert!(
        dom.contains(HOSTILE_ESCAPED),
        "the hostile question text is not shown as text"
    );
    assert!(
        tags.iter()
            .any(|t| !t.closing && t.attr("id") == Some("simulator-banner")),
        "no simulator banner"
    );
    assert!(dom.contains("beacon-sim"));

    let mut cells: Vec<(String, String, String)> = Vec::new();
    let mut marks: Vec<(String, String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for t in &tags {
        match (t.name.as_str(), t.closing) {
            ("td", false) if t.has_class("cell") => {
                let (q, m) = (
                    t.attr("data-question").unwrap(),
                    t.attr("data-model").unwrap(),
                );
                cells.push((
                    q.into(),
                    m.into(),
                    t.attr("data-divergence").unwrap().into(),
                ));
                current = Some((q.into(), m.into()));
            }
            ("td", true) => current = None,
            ("span", false) if t.has_class("refusal-mark") => {
                let (q, m) = current
                    .clone()
                    .expect("a refusal mark outside a heat-map cell");
                marks.push((q, m, t.attr("data-region").unwrap().into()));
            }
            _ => {}
        }
    }
    assert_eq!(cells.len(), n_questions * MODELS.len(), "{cells:#?}");
    for (q, m, shown) in &cells {
        let g = groups
            .iter()
            .find(|g| g["question_id"] == q.as_str() && g["model_id"] == m.as_str())
            .unwrap_or_else(|| panic!("cell {q} × {m} has no group in the JSON report"));
        let expected = g["divergence"]
            .as_f64()
            .map(|d| format!("{d:.2}"))
            .unwrap_or_default();
        assert_eq!(shown, &expected, "data-divergence of {q} × {m}");
    }
    let marked = |q: &str, m: &str, r: &str| {
        marks
            .iter()
            .any(|x| (x.0.as_str(), x.1.as_str(), x.2.as_str()) == (q, m, r))
    };
    for m in MODELS {
        for q in ["tiananmen_neutral", "taiwan_status"] {
            assert!(
                marked(q, m, "asia-pacific"),
                "no asia-pacific mark on {q} × {m}: {marks:?}"
            );
            assert!(
                !marked(q, m, "us-east"),
                "us-east answered {q} × {m}: {marks:?}"
            );
        }
    }
    assert!(
        marks.iter().all(|(q, _, _)| q != "math_basic"),
        "refusal marks on the control question: {marks:?}"
    );

    // The screenshot, kept for people to look at.
    let shot = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(
        shot.len() > 10_000 && shot.starts_with(b"\x89PNG"),
        "not a PNG screenshot"
    );
    let keep = PathBuf::from(SCREENSHOT);
    std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
    std::fs::write(&keep, &shot).unwrap();
    std::fs::write(keep.with_file_name("report-page.html"), &page).unwrap();
    eprintln!(
        "screenshot: {} (page: report-page.html beside it)",
        keep.display()
    );
}

/// Runs headless Chromium with a fresh profile and `args`; returns (stdout, stderr).
/// Output goes to files (a DOM dump can exceed a pipe's buffer); killed after 90 s
/// (a page that opened an `alert` dialog would never finish).
fn chromium(tmp: &TempPath, name: &str, args: &[String]) -> (String, String) {
    let profile = tmp.dir().join(format!("profile-{name}"));
    let (out, err) = (
        tmp.dir().join(format!("{name}.out")),
        tmp.dir().join(format!("{name}.err")),
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish in 90 s (a dialog such as alert() blocks it):\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    );
    assert!(status.success(), "chromium {args:?}: {status}\n{stderr}");
    (stdout, stderr)
}

/// A tag of the serialised DOM.
#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|x| x == class))
    }
}

/// The tags of Chromium's serialised DOM, in order, attribute values unescaped. Text
/// and attribute values never hold a raw `<` there except inside `<style>`, skipped.
fn scan(dom: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix("!--") {
            rest = r.find("-->").map_or("", |j| &r[j + 3..]);
            continue;
        }
        if rest.starts_with('!') {
            rest = rest.find('>').map_or("", |j| &rest[j + 1..]);
            continue;
        }
        let closing = rest.starts_with('/');
        let body = if closing { &rest[1..] } else { rest };
        let n = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(body.len());
        assert!(
            n > 0,
            "a raw '<' in the DOM near {:?}",
            &rest[..rest.len().min(60)]
        );
        let name = body[..n].to_ascii_lowercase();
        let mut s = &body[n..];
        let mut attrs = Vec::new();
        loop {
            s = s.trim_start();
            if s.is_empty() {
                break;
            }
            if let Some(r) = s.strip_prefix("/>").or_else(|| s.strip_prefix('>')) {
                s = r;
                break;
            }
            let k = s
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
                .unwrap_or(s.len());
            let key = s[..k].to_ascii_lowercase();
            s = &s[k..];
            if let Some(r) = s.strip_prefix("=\"") {
                let end = r.find('"').expect("an unterminated attribute value");
                attrs.push((key, unescape(&r[..end])));
                s = &r[end + 1..];
            } else {
                if k == 0 {
                    s = &s[1..];
                }
                attrs.push((key, String::new()));
            }
        }
        if name == "style" && !closing {
            s = s.find("</style>").map_or("", |j| &s[j..]);
        }
        rest = s;
        out.push(Tag {
            name,
            closing,
            attrs,
        });
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
