//! The HTTP server both services run (hyper HTTP/1.1, one task per connection): the
//! first request head read under `header_read_timeout` (and refused in JSON when its
//! URI or headers are too large), keep-alive connections closed after `idle_timeout`,
//! request bodies under `body_read_timeout` (transport.rs), at most `max_connections`
//! open at once (more are answered 503 and closed), `RLIMIT_NOFILE` raised at start,
//! `ConnectInfo<SocketAddr>` for handlers, WebSocket upgrades, and a graceful shutdown
//! that lets requests in flight finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::server_config::ServerConfig;
use crate::transport::{self, Render, TransportError};

/// Descriptors kept free for everything that is not a client connection: the database
/// pool, provider and router connections, log and database files.
const FD_HEADROOM: u64 = 256;
/// Refusals (503 over the cap, 414/431 of a first head) written at once; beyond this,
/// extra connections are closed without an answer so refusing costs nothing either.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// hyper's own limit on header lines (it answers an empty 431 past it).
const MAX_HEADER_LINES: usize = 100;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (1,024 descriptors is a common
/// default soft limit, far below what idle clients can hold open) and returns the soft
/// limit now in force, or `None` where it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise RLIMIT_NOFILE");
            Some(soft)
        }
    }
}

/// `max_connections`, capped below the descriptor limit with room for everything else.
pub fn connection_cap(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => {
            let room = limit.saturating_sub(FD_HEADROOM).max(16);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets
/// requests in flight finish (idle connections close at once) and returns when every
/// connection has ended. `render` writes transport errors in the service's error shape.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    render: Render,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let fd_limit = raise_fd_limit();
    let cap = connection_cap(config.max_connections, fd_limit);
    tracing::info!(
        fd_limit = ?fd_limit,
        max_connections = cap,
        configured = config.max_connections,
        "serving with RLIMIT_NOFILE raised and connections capped"
    );
    let app = transport::layer(app, config, render);
    let service = TowerToHyperService::new(app);
    let slots = Arc::new(Semaphore::new(cap));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let config = config.clone();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before accept: back
                // off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tracker.spawn(async move {
                    let e = TransportError::new(
                        hyper::StatusCode::SERVICE_UNAVAILABLE,
                        "TOO_MANY_CONNECTIONS",
                        "too many open connections; try again shortly",
                    )
                    .retry_after(1);
                    refuse(stream, render(e)).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let conn = Connection {
            service: service.clone(),
            config: config.clone(),
            render,
            token: token.clone(),
        };
        tracker.spawn(conn.run(stream, peer, permit));
    }
    drop(listener);
    token.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

struct Connection {
    service: TowerToHyperService<Router>,
    config: ServerConfig,
    render: Render,
    token: CancellationToken,
}

impl Connection {
    /// Serves one connection. The permit travels with the socket: an upgraded
    /// connection (a WebSocket) outlives this task and still counts until it closes.
    async fn run(self, mut stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let deadline = Instant::now() + self.config.header_read_timeout;
        let head = tokio::select! {
            h = tokio::time::timeout_at(deadline, first_head(&mut stream, &self.config)) => h,
            () = self.token.cancelled() => return,
        };
        let prefix = match head {
            Err(_elapsed) => {
                tracing::debug!(%peer, "no request head within header_read_timeout: closed");
                return;
            }
            Ok(Head::Closed) => return,
            Ok(Head::Refused(e)) => return refuse(stream, (self.render)(e)).await,
            Ok(Head::Complete(bytes)) => bytes,
        };
        let service = self.service;
        let per_request = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            hyper::service::Service::call(&service, req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper arms this timer whenever the connection waits for a request head,
        // including between requests on a kept-alive connection (proto/h1/conn.rs,
        // poll_read_head), so it is the idle timeout; the first head was already read
        // above under the stricter header_read_timeout.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.idle_timeout)
            .keep_alive(true);
        let io = TokioIo::new(Prefixed {
            prefix,
            pos: 0,
            inner: stream,
            _permit: permit,
        });
        let conn = builder.serve_connection(io, per_request).with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = self.token.cancelled() => {}
        }
        // Shutdown: the request in progress finishes, then the connection closes (an
        // idle one closes at once). Event streams and WebSockets end on the service's
        // own closing token.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

enum Head {
    /// The whole first head (and whatever followed it), for hyper to parse.
    Complete(Vec<u8>),
    /// The client closed before sending a head.
    Closed,
    Refused(TransportError),
}

/// Reads the connection's first request head, refusing an over-long request line (414)
/// or head (431) in JSON before hyper would answer them with an empty body.
async fn first_head(stream: &mut TcpStream, config: &ServerConfig) -> Head {
    let max_line = config.max_uri_bytes + 64;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(_) => {}
        }
        // hyper skips empty lines before a request line; so does this check.
        let start = buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(buf.len());
        let head = &buf[start..];
        let line = head.iter().position(|b| *b == b'\n');
        if line.unwrap_or(head.len()) > max_line {
            return Head::Refused(TransportError::new(
                hyper::StatusCode::URI_TOO_LONG,
                "URI_TOO_LONG",
                format!("request URI longer than {} bytes", config.max_uri_bytes),
            ));
        }
        if let Some(end) = find(head, b"\r\n\r\n").or_else(|| find(head, b"\n\n")) {
            let lines = head[..end].iter().filter(|b| **b == b'\n').count();
            if end <= config.max_header_bytes && lines <= MAX_HEADER_LINES {
                return Head::Complete(buf);
            }
        }
        if head.len() > config.max_header_bytes
            || head.iter().filter(|b| **b == b'\n').count() > MAX_HEADER_LINES
        {
            return Head::Refused(TransportError::new(
                hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HEADERS_TOO_LARGE",
                format!(
                    "request head larger than {} bytes or {MAX_HEADER_LINES} lines",
                    config.max_header_bytes
                ),
            ));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `response` (small, fully buffered) and closes. What the client sent is read
/// and dropped for a moment first: closing a socket with unread input makes the kernel
/// send RST, which can destroy the answer before the client reads it.
async fn refuse(mut stream: TcpStream, response: axum::response::Response) {
    let bytes = transport::to_http1_bytes(response).await;
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 8192];
        let mut drained = 0usize;
        while drained < (1 << 20) {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// The socket with the bytes already read from it put back in front, holding its
/// `max_connections` slot for as long as it is open.
struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(connection_cap(4096, None), 4096);
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(100, Some(1_048_576)), 100);
        assert_eq!(connection_cap(4096, Some(10)), 16);
    }

    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit() {
        use nix::sys::resource::{Resource, getrlimit};
        let now = raise_fd_limit();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, Some(soft));
        assert_eq!(soft, hard);
    }
}
