//! The server: binding, the accept loop and per-connection tasks (served with hyper
//! directly so a connection can be dropped without a response), and `SimHandle`, the
//! running instance with its stats, fault control and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SimConfig;
use crate::engine::Engine;
use crate::faults::{FaultError, FaultPatch, Faults};
use crate::http::{ConnCtl, router};
use crate::stats::SimStats;

/// Entry point of the library API.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Validates the config, binds the listener and starts serving. Returns once the
    /// socket is bound, so the URL can be used at once.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        config.validate().map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let hard = CancellationToken::new();
        let engine = Arc::new(Engine::new(&config, tracker.clone(), token.clone()));
        let app = router(engine.clone());
        tracker.spawn(accept_loop(
            listener,
            app,
            tracker.clone(),
            token.clone(),
            hard.clone(),
        ));
        tracing::info!(%addr, region = %config.region, label = %engine.label, "beacon-sim listening");
        Ok(SimHandle {
            addr,
            engine,
            tracker,
            token,
            hard,
            shutdown_timeout: config.shutdown_timeout,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tracker: TaskTracker,
    token: CancellationToken,
    hard: CancellationToken,
) {
    let service = TowerToHyperService::new(app);
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Typically out of file descriptors: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        // Latency figures in benchmarks must not include Nagle delays.
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(
            stream,
            service.clone(),
            token.clone(),
            hard.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    service: TowerToHyperService<Router>,
    token: CancellationToken,
    hard: CancellationToken,
) {
    let kill = CancellationToken::new();
    let ctl = ConnCtl { kill: kill.clone() };
    let per_request = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        hyper::service::Service::call(&service, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), per_request);
    tokio::pin!(conn);
    // `biased`: a requested drop must win over writing a response in the same wake-up.
    tokio::select! {
        biased;
        _ = kill.cancelled() => return,
        _ = hard.cancelled() => return,
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = token.cancelled() => {}
    }
    // Shutdown: finish the request in progress (calls are being cancelled, so it ends
    // quickly), then close; a hard stop cuts whatever is left.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        _ = kill.cancelled() => {}
        _ = hard.cancelled() => {}
        _ = conn.as_mut() => {}
    }
}

/// A running simulator. Dropping it stops the server without waiting; call
/// [`SimHandle::shutdown`] to wait for every task to end.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    engine: Arc<Engine>,
    tracker: TaskTracker,
    token: CancellationToken,
    hard: CancellationToken,
    shutdown_timeout: Duration,
}

impl SimHandle {
    /// `http://ADDR`, the base URL of both contracts.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same data as `GET /__sim/stats`.
    pub fn stats(&self) -> SimStats {
        self.engine.stats(0, usize::MAX)
    }

    /// Only the calls with an id above `since_id`, at most `limit` of them.
    pub fn stats_since(&self, since_id: u64, limit: usize) -> SimStats {
        self.engine.stats(since_id, limit)
    }

    pub fn faults(&self) -> Faults {
        self.engine.faults()
    }

    /// Applies a partial change of the fault knobs (as `POST /__sim/faults` does).
    pub fn set_faults(&self, patch: FaultPatch) -> Result<Faults, FaultError> {
        self.engine.set_faults(&patch)
    }

    /// Stops accepting, cancels every call in progress (recorded as
    /// `cancelled_by_shutdown`), lets open connections finish their current answer for
    /// up to `shutdown_timeout`, then cuts them; returns when every task has ended.
    /// Calling it again is harmless.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.shutdown_timeout, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown timeout; closing them");
            self.hard.cancel();
            self.tracker.wait().await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.token.cancel();
        self.hard.cancel();
        self.tracker.close();
    }
}
