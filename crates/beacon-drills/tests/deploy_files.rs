//! The deploy files checked against the binaries they deploy: `deploy/fly.toml` (the
//! runner on Fly.io) and `deploy/railway.json` (the router on Railway) are parsed, the
//! Dockerfile each names is read (its final stage's `COPY`, `ENV`, `EXPOSE`, `CMD`), and
//! the real binary is started the way the platform would start it: with the config file
//! the image copies in, the image's environment, the platform's secrets and a `PORT`.
//! Checked: the internal port is the port the binary listens on, `PORT` is honoured,
//! every health check path answers 200, the release command is a real subcommand that
//! succeeds (SQLite and PostgreSQL), the example config files parse with the services'
//! own loaders, and SIGTERM ends the process within `kill_timeout`, which leaves room for
//! the runner's `shutdown_grace` (the hand-back itself is the `sigterm_handback` drill).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use beacon_drills::binaries;
use beacon_drills::procs::{ChildEnv, Scratch, Service};

/// Process exit on a loaded machine, on top of the runner's shutdown grace.
const EXIT_MARGIN: Duration = Duration::from_secs(2);
const INFERENCE_TOKEN: &str = "deploy-test-inference-token";
/// Base64 of a 32-byte Ed25519 seed (RUNNER_SIGNING_KEY's form).
const SIGNING_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the final stage of a Dockerfile puts in the image and how it starts.
#[derive(Debug, Default)]
struct Image {
    /// Container path → repository path, for files copied from the build context.
    files: BTreeMap<String, PathBuf>,
    /// Container paths of the binaries copied from the build stage.
    binaries: Vec<String>,
    env: Vec<(String, String)>,
    expose: Vec<u16>,
    cmd: Vec<String>,
}

impl Image {
    /// Reads the instructions after the last `FROM` (the stage that is deployed).
    fn read(dockerfile: &Path) -> Image {
        let text = std::fs::read_to_string(dockerfile)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dockerfile.display()));
        let stage = text
            .rsplit_once("\nFROM ")
            .map(|(_, s)| s)
            .expect("a Dockerfile with a FROM");
        let mut image = Image::default();
        for line in stage.lines().map(str::trim) {
            let Some((op, rest)) = line.split_once(' ') else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            match op {
                "COPY" if words.first().is_some_and(|w| w.starts_with("--from=")) => {
                    image.binaries.push(words[words.len() - 1].to_string());
                }
                "COPY" => {
                    assert_eq!(words.len(), 2, "one source per COPY: {line}");
                    image
                        .files
                        .insert(words[1].to_string(), repo().join(words[0]));
                }
                "ENV" => {
                    let (k, v) = rest.split_once('=').expect("ENV KEY=VALUE");
                    image.env.push((k.trim().to_string(), v.trim().to_string()));
                }
                "EXPOSE" => image.expose.push(rest.trim().parse().expect("EXPOSE N")),
                "CMD" => image.cmd = serde_json::from_str(rest).expect("CMD in exec form"),
                _ => {}
            }
        }
        image
    }

    /// A command word as run here: a binary the image holds becomes the one cargo built,
    /// a file the image copies in becomes its repository source, the rest stays.
    fn resolve(&self, word: &str) -> String {
        if let Some(bin) = self.binaries.iter().find(|b| {
            Path::new(b.as_str()).file_name() == Path::new(word).file_name()
                && (b.as_str() == word || !word.contains('/'))
        }) {
            let bins = binaries().unwrap();
            let name = Path::new(bin).file_name().unwrap().to_str().unwrap();
            let local = match name {
                "beacon-runner" => &bins.runner,
                "beacon-router" => &bins.router,
                other => panic!("the image runs {other}, which is no Beacon service"),
            };
            return local.display().to_string();
        }
        match self.files.get(word) {
            Some(p) => p.display().to_string(),
            None => word.to_string(),
        }
    }

    /// The image's `ENV`, with container paths mapped to their repository files.
    fn env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), self.resolve(v)))
            .collect()
    }
}

/// A port nobody listens on now (the binary must take it from `PORT`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Fly duration: seconds as a number, or a string such as `"15s"` or `"2m"`.
fn fly_duration(v: &toml::Value) -> Duration {
    match v {
        toml::Value::Integer(n) => Duration::from_secs(u64::try_from(*n).unwrap()),
        toml::Value::String(s) => {
            let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap());
            let n: u64 = n.parse().unwrap();
            match unit {
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                other => panic!("unexpected duration unit {other:?} in {s:?}"),
            }
        }
        other => panic!("not a duration: {other}"),
    }
}

/// Starts `argv` (resolved through `image`) with exactly `env` plus `PORT`; checks the
/// `listening on` line's port is that `PORT`.
async fn start(
    name: &str,
    image: &Image,
    argv: &[String],
    env: &[(String, String)],
    scratch: &Scratch,
) -> (Service, String) {
    let port = free_port();
    let mut vars = image.env();
    vars.extend(env.iter().cloned());
    vars.push(("PORT".into(), port.to_string()));
    vars.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let program = image.resolve(&argv[0]);
    let args: Vec<String> = argv[1..].iter().map(|a| image.resolve(a)).collect();
    let log = scratch.path().join(format!("{name}.log"));
    let service = Service::spawn(
        name,
        Path::new(&program),
        &args,
        ChildEnv::Only(&vars),
        &log,
    )
    .await
    .unwrap();
    let url = reqwest::Url::parse(service.url()).unwrap();
    assert_eq!(url.port(), Some(port), "{name} does not honour PORT");
    (service, format!("http://127.0.0.1:{port}"))
}

/// Polls `url` until it answers 200 or `limit` passes (the platform's own patience).
async fn answers_200(url: &str, limit: Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let resp = http.get(url).timeout(Duration::from_secs(5)).send().await;
        let status = resp.map(|r| r.status().as_u16()).map_err(|e| e.to_string());
        if status == Ok(200) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "GET {url}: {status:?} within {limit:?}, not 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Railway {
    image: Image,
    start: Vec<String>,
    health_path: String,
    health_timeout: Duration,
}

fn railway() -> Railway {
    let path = repo().join("deploy/railway.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["build"]["builder"], "DOCKERFILE");
    // Railway resolves the Dockerfile from the repository root.
    let dockerfile = repo().join(json["build"]["dockerfilePath"].as_str().unwrap());
    let image = Image::read(&dockerfile);
    let start = match json["deploy"]["startCommand"].as_str() {
        Some(cmd) => cmd.split_whitespace().map(String::from).collect(),
        None => image.cmd.clone(),
    };
    Railway {
        image,
        start,
        health_path: json["deploy"]["healthcheckPath"].as_str().unwrap().into(),
        health_timeout: Duration::from_secs(json["deploy"]["healthcheckTimeout"].as_u64().unwrap()),
    }
}

/// The router's variables on Railway (railway.json and its Dockerfile name them).
fn router_secrets() -> Vec<(String, String)> {
    [
        ("ROUTER_INFERENCE_TOKEN", INFERENCE_TOKEN),
        ("ROUTER_ADMIN_TOKEN", "deploy-test-admin-token"),
        ("MODAL_TOKEN", "deploy-test-modal-token"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// The router as Railway runs it; returns it and its base URL.
async fn railway_router(scratch: &Scratch) -> (Service, String) {
    let r = railway();
    start(
        "beacon-router",
        &r.image,
        &r.start,
        &router_secrets(),
        scratch,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn railway_json_starts_a_router_that_passes_its_health_check() {
    let r = railway();
    let scratch = Scratch::new("beacon-deploy-railway").unwrap();
    // The config file the container starts with parses with the router's own loader,
    // and its port (used when PORT is unset) is the one the image exposes.
    let config = r
        .image
        .files
        .get("/etc/beacon/router.toml")
        .cloned()
        .or_else(|| {
            let i = r.start.iter().position(|a| a == "--config")?;
            r.image.files.get(&r.start[i + 1]).cloned()
        });
    let config = config.expect("the image copies the router's config file in");
    let secrets = router_secrets();
    let env = |k: &str| secrets.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let parsed = beacon_router::Config::from_file(&config, &env).unwrap();
    assert_eq!(
        r.image.expose,
        [parsed.listen.port()],
        "EXPOSE ≠ listen port"
    );

    let (mut router, url) = start("beacon-router", &r.image, &r.start, &secrets, &scratch).await;
    answers_200(&format!("{url}{}", r.health_path), r.health_timeout).await;
    router.terminate().unwrap();
    let status = router.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "SIGTERM: {status}{}", router.log_tail());
}

struct Fly {
    image: Image,
    toml: toml::Value,
}

fn fly() -> Fly {
    let dir = repo().join("deploy");
    let text = std::fs::read_to_string(dir.join("fly.toml")).unwrap();
    let toml = toml::Value::Table(toml::from_str(&text).unwrap());
    // flyctl resolves `build.dockerfile` from the directory fly.toml is in.
    let dockerfile = dir.join(toml["build"]["dockerfile"].as_str().unwrap());
    Fly {
        image: Image::read(&dockerfile),
        toml,
    }
}

/// The runner's secrets on Fly (`fly secrets set …` in fly.toml), for `database_url`.
fn runner_secrets(database_url: &str, router_url: &str) -> Vec<(String, String)> {
    [
        ("ROUTER_URL", router_url),
        ("ROUTER_TOKEN", INFERENCE_TOKEN),
        ("DATABASE_URL", database_url),
        ("RUNNER_SIGNING_KEY", SIGNING_KEY),
        ("RUNNER_ADMIN_TOKEN", "deploy-test-runner-admin"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// Runs `argv` through `image` with exactly `env`; returns (success, stdout + stderr).
fn run_once(image: &Image, argv: &[String], env: &[(String, String)]) -> (bool, String) {
    let mut vars = image.env();
    vars.extend(env.iter().cloned());
    let out = std::process::Command::new(image.resolve(&argv[0]))
        .args(argv[1..].iter().map(|a| image.resolve(a)))
        .env_clear()
        .envs(vars)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn fly_runner_serves_as_deployed(database_url: &str) {
    let f = fly();
    let scratch = Scratch::new("beacon-deploy-fly").unwrap();
    let (_router, router_url) = railway_router(&scratch).await;
    let secrets = runner_secrets(database_url, &router_url);
    let lookup = |k: &str| {
        let image_env = f.image.env();
        secrets
            .iter()
            .chain(image_env.iter())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };

    // The config file the container starts with parses with the runner's own loader.
    let config_path = lookup("BEACON_RUNNER_CONFIG").expect("the image names its config file");
    let config = beacon_runner::Config::load(Some(Path::new(&config_path)), &lookup).unwrap();
    let service = &f.toml["http_service"];
    let internal = u16::try_from(service["internal_port"].as_integer().unwrap()).unwrap();
    assert_eq!(
        config.listen.port(),
        internal,
        "listen port ≠ internal_port"
    );
    assert_eq!(f.image.expose, [internal], "EXPOSE ≠ internal_port");

    // kill_signal and kill_timeout are top-level keys (below a [[vm]] table they would
    // belong to it and Fly would use its 5 s default).
    assert_eq!(
        f.toml.get("kill_signal").and_then(|v| v.as_str()),
        Some("SIGTERM"),
        "fly.toml: no top-level kill_signal = \"SIGTERM\""
    );
    let kill_timeout = fly_duration(f.toml.get("kill_timeout").expect("top-level kill_timeout"));
    let grace = config.scheduler.shutdown_grace;
    assert!(
        kill_timeout >= grace + EXIT_MARGIN,
        "kill_timeout {kill_timeout:?} leaves no room for shutdown_grace {grace:?} + {EXIT_MARGIN:?}"
    );

    // The release command is a real subcommand of the image's binary, and it succeeds
    // (an unknown one fails the same way, so the check can tell them apart).
    let release: Vec<String> = f.toml["deploy"]["release_command"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let (ok, out) = run_once(&f.image, &release, &secrets);
    assert!(
        ok && out.contains("migrations applied"),
        "{release:?}: {out}"
    );
    let bogus = vec![release[0].clone(), "no-such-subcommand".into()];
    assert!(!run_once(&f.image, &bogus, &secrets).0);

    // Started as the image's CMD: PORT honoured, every health check answers 200 within
    // its grace period.
    let (mut runner, url) =
        start("beacon-runner", &f.image, &f.image.cmd, &secrets, &scratch).await;
    let checks = service["checks"].as_array().expect("http_service.checks");
    assert!(!checks.is_empty());
    for check in checks {
        assert_eq!(check["method"].as_str(), Some("GET"));
        let grace_period = fly_duration(&check["grace_period"]);
        let path = check["path"].as_str().unwrap();
        answers_200(&format!("{url}{path}"), grace_period).await;
    }

    // SIGTERM: out within the shutdown grace, well inside kill_timeout.
    let asked = Instant::now();
    runner.terminate().unwrap();
    let status = runner.wait_exit(kill_timeout).await.unwrap();
    assert!(status.success(), "SIGTERM: {status}{}", runner.log_tail());
    assert!(asked.elapsed() <= grace + EXIT_MARGIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_toml_runner_on_sqlite() {
    let scratch = Scratch::new("beacon-deploy-sqlite").unwrap();
    let url = format!("sqlite://{}/runner.db", scratch.path().display());
    fly_runner_serves_as_deployed(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_toml_runner_on_postgres() {
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    fly_runner_serves_as_deployed(pg.url()).await;
}
