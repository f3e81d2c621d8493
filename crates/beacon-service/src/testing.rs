//! Hostile clients over raw sockets, for both services' acceptance tests of the serve
//! loop: a head that never ends, a body that never ends, idle and capped connections,
//! and requests no HTTP client library would send (a 70 KB URI, `%FF` in a path).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl RawResponse {
    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {:?}", self.status, self.body))
    }

    /// Asserts status, `content-type: application/json` and `error_code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let ct = self.headers.get("content-type").map(String::as_str);
        assert!(
            ct.is_some_and(|c| c.starts_with("application/json")),
            "content-type of {self:?}"
        );
        let v = self.json();
        assert_eq!(v["error_code"], code, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
}

/// Parses one response from `bytes` (head, then `content-length` bytes of body).
fn parse(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total = end + 4 + len;
    if bytes.len() < total {
        return None;
    }
    let body = String::from_utf8_lossy(&bytes[end + 4..total]).into_owned();
    Some((
        RawResponse {
            status,
            headers,
            body,
        },
        total,
    ))
}

/// Reads one response (with a `content-length`) from `stream` within `limit`.
pub async fn read_response(stream: &mut TcpStream, limit: Duration) -> RawResponse {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some((r, _)) = parse(&buf) {
                return r;
            }
            let mut chunk = [0u8; 16384];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a whole response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {limit:?}"))
}

/// Sends `bytes` on a fresh connection and reads the answer (5 s at most).
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_response(&mut s, Duration::from_secs(5)).await
}

/// `METHOD target` with `Connection: close` and an optional JSON body.
pub async fn request(addr: SocketAddr, method: &str, target: &str, body: &str) -> RawResponse {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send(addr, req.as_bytes()).await
}

/// Waits until the server closes `stream` (EOF or reset); returns how long it took.
/// Panics when it is still open after `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let wait = async {
        let mut sink = [0u8; 4096];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open for {limit:?}"));
    started.elapsed()
}

/// A request head that never ends: the server closes the connection within `limit`.
pub async fn slow_headers_are_cut(addr: SocketAddr, limit: Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .unwrap();
    closed_within(&mut s, limit).await;
}

/// A body that stops after 10 of its announced 1,000 bytes: the answer (returned) comes
/// within `limit`.
pub async fn slow_body(addr: SocketAddr, path: &str, limit: Duration) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"spec\": 1"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    read_response(&mut s, limit).await
}

/// One request on a kept-alive connection, then silence: the server closes it within
/// `limit` of the answer.
pub async fn idle_keep_alive_is_closed(addr: SocketAddr, limit: Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "{r:?}");
    closed_within(&mut s, limit).await;
}

/// Opens `n` connections that send nothing.
pub async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(TcpStream::connect(addr).await.unwrap());
    }
    out
}

/// `GET /livez` on a fresh connection, answered within `limit`.
pub async fn livez_within(addr: SocketAddr, limit: Duration) -> RawResponse {
    let started = Instant::now();
    let r = tokio::time::timeout(limit, request(addr, "GET", "/livez", ""))
        .await
        .unwrap_or_else(|_| panic!("/livez did not answer within {limit:?}"));
    assert!(started.elapsed() < limit);
    r
}

/// Raises this process's soft `RLIMIT_NOFILE` (test clients hold many sockets).
pub fn raise_fd_limit() {
    crate::serve::raise_fd_limit();
}
