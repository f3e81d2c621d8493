//! The load generator: a fixed pool of HTTP/1 connections, one per worker task, fed by
//! the open-loop pacer. An idle worker takes the next due request; each request's
//! latency runs from its due time to the last byte of a checked answer (HTTP 200 and
//! `"success": true`, or an OpenAI completion with its content).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinSet;

use crate::schedule::{Job, Pacing, Schedule, nanos, pace};

/// A request that has not answered after this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Error messages kept per phase (the count is always exact).
const ERROR_SAMPLES: usize = 5;
/// The model every request asks for (one the simulator serves by default).
pub const MODEL: &str = "llama3.2-1b";
/// The inference token of the routers the benchmarks start (`ROUTER_INFERENCE_TOKEN`);
/// routed requests carry it, as the runner's do.
pub const ROUTER_TOKEN: &str = "beacon-bench-router-token-0123456";
/// The router's `[auth]` table naming it.
pub const ROUTER_AUTH_TOML: &str = "[auth]\ninference_token_env = \"ROUTER_INFERENCE_TOKEN\"\n";

/// The region of the simulator and of every routed request.
pub const REGION: &str = "eu-west";

/// The key of the peer proxies the benchmark starts (LiteLLM's master key).
pub const PEER_KEY: &str = "sk-beacon-bench-peer-key";

/// Which contract a request speaks, to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The simulator's Modal endpoint: `POST /` with the Modal body.
    Direct,
    /// The router: `POST /inference` with a region preference.
    Router,
    /// The simulator's OpenAI-compatible endpoint: `POST /v1/chat/completions`.
    DirectChat,
    /// The router's OpenAI front door, the region in `X-Beacon-Region`.
    RouterChat,
    /// A peer proxy's OpenAI route (LiteLLM), fronting the simulator's OpenAI route.
    Peer,
}

impl Route {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct /",
            Route::Router => "beacon /inference",
            Route::DirectChat => "direct /v1/chat/completions",
            Route::RouterChat => "beacon /v1/chat/completions",
            Route::Peer => "litellm /v1/chat/completions",
        }
    }

    /// Whether requests and answers are OpenAI chat completions.
    fn is_chat(self) -> bool {
        matches!(self, Route::DirectChat | Route::RouterChat | Route::Peer)
    }

    /// The direct path this one is compared with: the simulator route its server
    /// calls (the router's provider is a Modal one; the peer fronts the OpenAI route).
    pub fn baseline(self) -> Route {
        match self {
            Route::Direct | Route::Router | Route::RouterChat => Route::Direct,
            Route::DirectChat | Route::Peer => Route::DirectChat,
        }
    }
}

/// Where requests go and what they carry.
#[derive(Debug)]
pub struct Target {
    pub route: Route,
    addr: SocketAddr,
    /// `Host` header value.
    authority: String,
}

impl Target {
    /// A target from a `listening on` URL such as `http://127.0.0.1:40123`.
    pub fn new(route: Route, url: &str) -> anyhow::Result<Target> {
        let authority = url
            .strip_prefix("http://")
            .with_context(|| format!("not an http:// URL: {url:?}"))?
            .trim_end_matches('/')
            .to_string();
        let addr = authority
            .parse()
            .with_context(|| format!("not an IP:port address: {url:?}"))?;
        Ok(Target {
            route,
            addr,
            authority,
        })
    }

    fn path(&self) -> &'static str {
        match self.route {
            Route::Direct => "/",
            Route::Router => "/inference",
            Route::DirectChat | Route::RouterChat | Route::Peer => "/v1/chat/completions",
        }
    }

    /// The body of request `i`: a short prompt that varies from request to request.
    fn body(&self, i: u64) -> Bytes {
        let prompt = format!(
            "Benchmark question {i}: what is {} plus {}? Answer briefly.",
            i % 97,
            i % 89
        );
        let body = match self.route {
            Route::Direct => json!({"model": MODEL, "prompt": prompt,
                                    "temperature": 0.1, "max_tokens": 32}),
            Route::Router => json!({"model": MODEL, "prompt": prompt,
                                    "region_preference": REGION}),
            Route::DirectChat | Route::RouterChat | Route::Peer => json!({"model": MODEL,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0.1, "max_tokens": 32}),
        };
        Bytes::from(body.to_string())
    }
}

type Conn = SendRequest<Full<Bytes>>;

/// Opens one HTTP/1 connection (no Nagle delay); its driver runs on its own task.
async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(sender)
}

/// What one phase measured.
#[derive(Debug, Default)]
pub struct PhaseResult {
    /// Latency of each successful request, due time to checked answer, in ns.
    pub latencies_ns: Vec<u64>,
    /// How late the pacer released each request, in ns.
    pub lags_ns: Vec<u64>,
    /// From release by the pacer to a worker starting the request, in ns: the
    /// generator's own event-loop delay plus any wait for an idle connection.
    pub pickup_ns: Vec<u64>,
    pub sent: u64,
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Requests per second the pacer achieved.
    pub achieved_rate: f64,
}

impl PhaseResult {
    /// Adds another phase's figures (the rate becomes the request-weighted mean).
    pub fn absorb(&mut self, other: PhaseResult) {
        let total = self.sent + other.sent;
        if total > 0 {
            self.achieved_rate = (self.achieved_rate * self.sent as f64
                + other.achieved_rate * other.sent as f64)
                / total as f64;
        }
        self.sent = total;
        self.errors += other.errors;
        self.latencies_ns.extend(other.latencies_ns);
        self.lags_ns.extend(other.lags_ns);
        self.pickup_ns.extend(other.pickup_ns);
        for e in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        }
    }
}

/// A fixed set of connections to one target, kept open across phases.
pub struct Pool {
    target: Arc<Target>,
    conns: Vec<Option<Conn>>,
}

impl Pool {
    /// Opens `connections` connections at once.
    pub async fn connect(target: Target, connections: usize) -> anyhow::Result<Pool> {
        let mut set = JoinSet::new();
        for _ in 0..connections {
            set.spawn(connect(target.addr));
        }
        let mut conns = Vec::with_capacity(connections);
        while let Some(joined) = set.join_next().await {
            conns.push(Some(joined??));
        }
        Ok(Pool {
            target: Arc::new(target),
            conns,
        })
    }

    pub fn route(&self) -> Route {
        self.target.route
    }

    /// Runs `rate` requests per second for `duration`, numbered from `first_index`,
    /// and waits for every answer.
    pub async fn run(&mut self, rate: f64, duration: Duration, first_index: u64) -> PhaseResult {
        let (tx, rx) = unbounded_channel();
        let queue = Arc::new(Mutex::new(rx));
        let mut workers = JoinSet::new();
        let pool_size = self.conns.len();
        for conn in self.conns.drain(..) {
            workers.spawn(worker(self.target.clone(), conn, queue.clone()));
        }
        // A few milliseconds of head start so every worker is waiting for its first job.
        let schedule = Schedule::new(Instant::now() + Duration::from_millis(5), rate, duration);
        let pacer = tokio::task::spawn_blocking(move || pace(schedule, first_index, tx));
        let mut result = PhaseResult::default();
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(done) => {
                    result.latencies_ns.extend(done.latencies_ns);
                    result.pickup_ns.extend(done.pickup_ns);
                    result.errors += done.errors;
                    for e in done.error_samples {
                        if result.error_samples.len() < ERROR_SAMPLES {
                            result.error_samples.push(e);
                        }
                    }
                    self.conns.push(done.conn);
                }
                Err(e) => {
                    // The worker's in-flight request is lost: count it as an error.
                    result.errors += 1;
                    result
                        .error_samples
                        .push(format!("worker task failed: {e}"));
                }
            }
        }
        // A failed worker's connection is reopened lazily next phase.
        self.conns.resize_with(pool_size, || None);
        match pacer.await {
            Ok(Pacing {
                lags_ns,
                sent,
                last_release,
            }) => {
                result.achieved_rate =
                    crate::schedule::achieved_rate(rate, sent, schedule.start, last_release);
                result.lags_ns = lags_ns;
                result.sent = sent;
            }
            Err(e) => {
                result.errors += 1;
                result.error_samples.push(format!("pacer failed: {e}"));
            }
        }
        result
    }
}

/// What one worker measured.
struct WorkerDone {
    latencies_ns: Vec<u64>,
    pickup_ns: Vec<u64>,
    errors: u64,
    error_samples: Vec<String>,
    conn: Option<Conn>,
}

/// Takes due requests until the pacer is done; sends each on its own connection,
/// reopening it after a failure.
async fn worker(
    target: Arc<Target>,
    mut conn: Option<Conn>,
    queue: Arc<Mutex<UnboundedReceiver<Job>>>,
) -> WorkerDone {
    let mut done = WorkerDone {
        latencies_ns: Vec::new(),
        pickup_ns: Vec::new(),
        errors: 0,
        error_samples: Vec::new(),
        conn: None,
    };
    loop {
        let job = { queue.lock().await.recv().await };
        let Some(job) = job else { break };
        done.pickup_ns.push(nanos(
            Instant::now().saturating_duration_since(job.released),
        ));
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, call(&mut conn, &target, job.index))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        match outcome {
            Ok(()) => done
                .latencies_ns
                .push(nanos(Instant::now().saturating_duration_since(job.due))),
            Err(e) => {
                // The connection may be half-way through a response: start afresh.
                conn = None;
                done.errors += 1;
                if done.error_samples.len() < ERROR_SAMPLES {
                    done.error_samples.push(e);
                }
            }
        }
    }
    done.conn = conn;
    done
}

/// Sends request `index` and checks the answer: HTTP 200 and `"success": true`.
async fn call(conn: &mut Option<Conn>, target: &Target, index: u64) -> Result<(), String> {
    let sender = match conn {
        Some(c) if !c.is_closed() => c,
        _ => conn.insert(connect(target.addr).await.map_err(|e| format!("{e:#}"))?),
    };
    sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let mut request = hyper::Request::post(target.path())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json");
    match target.route {
        Route::Router => {
            request = request.header(AUTHORIZATION, format!("Bearer {ROUTER_TOKEN}"));
        }
        Route::RouterChat => {
            request = request
                .header(AUTHORIZATION, format!("Bearer {ROUTER_TOKEN}"))
                .header("x-beacon-region", REGION);
        }
        Route::Peer => request = request.header(AUTHORIZATION, format!("Bearer {PEER_KEY}")),
        Route::Direct | Route::DirectChat => {}
    }
    let request = request
        .body(Full::new(target.body(index)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    check(target.route, status.as_u16(), &body)
}

/// An answer counts only if it is HTTP 200 with `"success": true` (Modal and
/// `/inference`), or with `choices[0].message.content` (OpenAI routes).
fn check(route: Route, status: u16, body: &[u8]) -> Result<(), String> {
    let snippet = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if status != 200 {
        return Err(format!("HTTP {status}: {}", snippet()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("answer is not JSON ({e}): {}", snippet()))?;
    if route.is_chat() {
        if value
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(format!("completion without content: {}", snippet()));
        }
        return Ok(());
    }
    if value.get("success") != Some(&Value::Bool(true)) {
        return Err(format!("answer without \"success\": true: {}", snippet()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_with_success_true_counts() {
        let r = Route::Router;
        assert!(check(r, 200, br#"{"success":true,"response":"4"}"#).is_ok());
        assert!(check(r, 200, br#"{"success":false}"#).is_err());
        assert!(
            check(
                r,
                200,
                br#"{"status":"error","error":"Prompt is required"}"#
            )
            .is_err()
        );
        assert!(check(r, 200, b"{\"success\":tr").is_err());
        let err = check(r, 502, br#"{"success":true}"#).unwrap_err();
        assert!(err.starts_with("HTTP 502"), "{err}");
        let c = Route::Peer;
        assert!(check(c, 200, br#"{"choices":[{"message":{"content":"4"}}]}"#).is_ok());
        assert!(check(c, 200, br#"{"choices":[]}"#).is_err());
        assert!(check(c, 200, br#"{"success":true}"#).is_err());
    }

    #[test]
    fn targets_speak_their_contract() {
        let direct = Target::new(Route::Direct, "http://127.0.0.1:4000").unwrap();
        let routed = Target::new(Route::Router, "http://127.0.0.1:4001/").unwrap();
        assert_eq!((direct.path(), routed.path()), ("/", "/inference"));
        assert_eq!(routed.authority, "127.0.0.1:4001");
        let d: Value = serde_json::from_slice(&direct.body(7)).unwrap();
        let r: Value = serde_json::from_slice(&routed.body(8)).unwrap();
        assert_eq!(d["max_tokens"], 32);
        assert_eq!(r["region_preference"], REGION);
        assert_ne!(d["prompt"], r["prompt"]);
        assert!(Target::new(Route::Direct, "https://example.com").is_err());
    }
}
