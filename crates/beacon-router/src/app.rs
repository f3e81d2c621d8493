//! The router as a library: `Application::build` binds (port 0 in tests) and
//! `Application::run` serves with graceful shutdown; `start` does both in the
//! background for tests and `beacon demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{AppState, routes};
use crate::config::Config;
use crate::error::ApiError;
use crate::idempotency::IdempotencyCache;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::{prober, routing};

/// A bound, not yet serving, router.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Validates nothing more (the config is already validated) and binds the socket.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.listen).await?;
        let registry = Arc::new(Registry::new(&config));
        let metrics = Arc::new(Metrics::default());
        let router = routing::Router {
            registry,
            health: config.health.clone(),
            regions: config.regions(),
            metrics: metrics.clone(),
        };
        let state = Arc::new(AppState {
            router,
            idempotency: IdempotencyCache::new(&config.idempotency),
            metrics,
            first_round: Arc::new(AtomicUsize::new(0)),
            config,
        });
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// Serves until `shutdown` is cancelled: probes start at once; in-flight requests
    /// finish (graceful shutdown), then probes stop.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        let s = &self.state;
        prober::spawn(
            s.router.registry.clone(),
            s.config.health.clone(),
            s.metrics.clone(),
            s.first_round.clone(),
            &tracker,
            shutdown.child_token(),
        );
        let sweeper = self.state.clone();
        let sweep_stop = shutdown.child_token();
        tracker.spawn(async move { sweeper.idempotency.sweep(sweep_stop).await });
        // The serve loop gives handlers `ConnectInfo<SocketAddr>`: peer addresses scope
        // `Idempotency-Key`s when inference is unauthenticated.
        let app = routes(self.state.clone());
        let signal = shutdown.clone();
        beacon_service::serve(
            self.listener,
            app,
            &self.state.config.server,
            ApiError::render_transport,
            async move { signal.cancelled().await },
        )
        .await?;
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        Ok(())
    }
}

/// A router running in the background of this process.
pub type RouterHandle = beacon_service::ServiceHandle;

/// Builds and runs a router on a tracked task.
pub async fn start(config: Config) -> anyhow::Result<RouterHandle> {
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    Ok(beacon_service::ServiceHandle::spawn(
        "beacon-router",
        addr,
        move |token| app.run(token),
    ))
}
