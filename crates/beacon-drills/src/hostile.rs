//! A hostile router: an HTTP proxy on 127.0.0.1 in front of a real router. Every
//! request reaches the real router (and through it the simulators, so provider calls are
//! counted as usual); only the answers to `POST /inference` are rewritten on their way
//! back, per a [`Lie`] that can be changed while it runs. A runner whose `ROUTER_URL`
//! points here meets a router that lies about provenance or sends far too much.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::stream;
use serde_json::{Value, json};

/// How the proxy rewrites `/inference` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// `200 {"success": true}` and nothing else: no provider, no region, no answer.
    NoProvenance,
    /// `200` with a body of this many bytes (spaces), streamed without a
    /// `Content-Length`, so only a bounded reader stops it.
    HugeBody(u64),
    /// The real answer with its `response` text replaced by this many `x`.
    LongAnswer(usize),
}

/// The largest client body the proxy forwards (the runner's requests are a few KiB).
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The pieces a [`Lie::HugeBody`] is streamed in, all slices of one static buffer: a
/// 200 MB lie costs the proxy no memory.
const CHUNK: usize = 64 * 1024;
static FILLER: [u8; CHUNK] = [b' '; CHUNK];

struct Shared {
    upstream: String,
    lie: Mutex<Lie>,
    http: reqwest::Client,
    inference_calls: AtomicU64,
}

impl Shared {
    fn lie(&self) -> Lie {
        *self.lie.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running proxy; it stops accepting connections when dropped.
pub struct LyingRouter {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl LyingRouter {
    /// Binds 127.0.0.1:0 and forwards everything to `upstream` (a router's base URL),
    /// rewriting `/inference` answers per `lie`.
    pub async fn start(upstream: &str, lie: Lie) -> anyhow::Result<LyingRouter> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            lie: Mutex::new(lie),
            http: reqwest::Client::builder()
                .build()
                .context("cannot build the proxy's HTTP client")?,
            inference_calls: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("the lying router cannot bind 127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LyingRouter { url, shared, task })
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123`: a runner's `ROUTER_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lies differently from the next answer on.
    pub fn set_lie(&self, lie: Lie) {
        *self.shared.lie.lock().unwrap_or_else(|p| p.into_inner()) = lie;
    }

    /// `POST /inference` requests forwarded so far.
    pub fn inference_calls(&self) -> u64 {
        self.shared.inference_calls.load(Ordering::Relaxed)
    }
}

impl Drop for LyingRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain answer of the proxy's own (upstream unreachable, a body it cannot read).
fn answer(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn proxy_failure(why: String) -> Response {
    let body = json!({"success": false, "error": format!("lying router: {why}")});
    answer(
        StatusCode::BAD_GATEWAY,
        "application/json",
        Body::from(body.to_string()),
    )
}

async fn forward(State(p): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(e) => return proxy_failure(format!("cannot read the request: {e}")),
    };
    let is_inference = parts.uri.path() == "/inference";
    if is_inference {
        p.inference_calls.fetch_add(1, Ordering::Relaxed);
    }
    let url = format!("{}{}", p.upstream, parts.uri);
    let mut out = p.http.request(parts.method.clone(), url).body(body);
    for (k, v) in &parts.headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => return proxy_failure(format!("upstream: {e}")),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    // The upstream is the real router, whose answers its own limits already bound.
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return proxy_failure(format!("upstream body: {e}")),
    };
    if !is_inference {
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = status;
        for (k, v) in &headers {
            if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
                r.headers_mut().insert(k, v.clone());
            }
        }
        return r;
    }
    let body = match p.lie() {
        Lie::NoProvenance => Body::from(r#"{"success": true}"#),
        Lie::HugeBody(n) => huge_body(n),
        Lie::LongAnswer(n) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                v["response"] = json!("x".repeat(n));
                Body::from(v.to_string())
            }
            // Not an answer to lengthen (an error page): passed on as it came.
            Err(_) => Body::from(bytes),
        },
    };
    answer(StatusCode::OK, "application/json", body)
}

/// `n` bytes of spaces in [`CHUNK`]-sized pieces, produced as the reader takes them.
fn huge_body(n: u64) -> Body {
    let chunk = CHUNK as u64;
    let pieces = n.div_ceil(chunk);
    Body::from_stream(stream::iter((0..pieces).map(move |i| {
        let len = (n - i * chunk).min(chunk) as usize;
        Ok::<_, std::io::Error>(Bytes::from_static(&FILLER[..len]))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_huge_body_has_exactly_its_length() {
        let n = 3 * CHUNK as u64 + 17;
        let bytes = axum::body::to_bytes(huge_body(n), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes.len() as u64, n);
        assert!(bytes.iter().all(|b| *b == b' '));
    }
}
