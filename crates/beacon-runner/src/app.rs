//! The runner as a library: `Application::build` connects the store (running its
//! migrations) and binds; `run` serves the API and the scheduler until shutdown, then
//! hands in-flight work back within the grace period. `start` does both in the
//! background for tests and `beacon demo`.

use std::net::SocketAddr;
use std::sync::Arc;

use beacon_core::Catalogue;
use beacon_core::spec::Limits;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{AppState, RateLimiter, routes};
use crate::config::{Config, generate_signing_key};
use crate::error::ApiError;
use crate::events::Events;
use crate::router::{RouterCatalog, RouterClient};
use crate::scheduler::{self, Ctx, Registry};

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = beacon_store::connect(&config.database_url).await?;
        let listener = TcpListener::bind(config.listen).await?;
        let signing_key = match &config.signing_key {
            Some(k) => k.clone(),
            None => {
                let k = generate_signing_key();
                tracing::warn!(
                    public_key = %beacon_core::signing::encode_public_key(&k.verifying_key()),
                    "RUNNER_SIGNING_KEY is not set: receipts are signed with a key generated for this process"
                );
                k
            }
        };
        if config.router_token.is_none() {
            tracing::warn!(
                "ROUTER_TOKEN is not set: router calls carry no token, which only a router with \
                 [auth] allow_unauthenticated accepts"
            );
        }
        crate::classify::build_phrase_sets();
        let router = Arc::new(RouterClient::new(
            config.router_url.clone(),
            config.breaker.clone(),
            config.limits.max_router_body_bytes,
            config.router_token.as_deref(),
        ));
        let ctx = Arc::new(Ctx {
            store,
            router,
            cfg: config.scheduler.clone(),
            router_timeout: config.router_timeout,
            instance_id: config.instance_id.clone(),
            signing_key,
            events: Arc::new(Events::default()),
            metrics: Arc::new(crate::metrics::registry()),
            limits: scheduler::Limits::new(
                config.scheduler.max_concurrency,
                config.scheduler.max_concurrency_per_region,
            ),
            limits_cfg: config.limits.clone(),
            jobs: Registry::default(),
            writes: Default::default(),
            starts: scheduler::GroupCommit::new(scheduler::GROUP_TURNS)
                .gathering(scheduler::GATHER),
            finishes: scheduler::GroupCommit::new(scheduler::GROUP_TURNS)
                .gathering(scheduler::GATHER),
            acks: Default::default(),
            wake: Notify::new(),
        });
        let state = Arc::new(AppState {
            rate: RateLimiter::new(config.submissions_per_minute),
            ctx,
            catalogue: Catalogue::builtin(),
            limits: Limits::default(),
            catalog: RouterCatalog::default(),
            started: std::time::Instant::now(),
            reports: Default::default(),
            transparency: Default::default(),
            closing: CancellationToken::new(),
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

    /// The runner's receipt key (base64), for clients that verify receipts.
    pub fn public_key(&self) -> String {
        beacon_core::signing::encode_public_key(&self.state.ctx.signing_key.verifying_key())
    }

    /// Serves until `shutdown` is cancelled. Then: stop accepting, stop claiming, abort
    /// in-flight router calls and return their executions to `pending`, release leases.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        if self.state.config.scheduler.enabled {
            let scheduler_token = shutdown.child_token();
            tracker.spawn(scheduler::run(
                self.state.ctx.clone(),
                scheduler_token,
                tracker.clone(),
            ));
        } else {
            tracing::info!("scheduler disabled: this instance only serves the API");
            // It still hears other instances' acknowledgements of its cancels.
            tracker.spawn(scheduler::listen(
                self.state.ctx.clone(),
                shutdown.child_token(),
                tracker.clone(),
            ));
        }
        // Every instance appends stored receipts to the transparency log and keeps its
        // tree in step with it (crate::transparency), whether it schedules or not.
        tracker.spawn(crate::transparency::run(
            self.state.transparency.clone(),
            self.state.ctx.store.clone(),
            self.state.config.scheduler.poll_interval,
            shutdown.child_token(),
        ));
        // The optional judge labels stored answers (crate::judge); off by default.
        if self.state.config.judge.enabled {
            tracker.spawn(crate::judge::run(
                self.state.ctx.clone(),
                self.state.config.judge.clone(),
                shutdown.child_token(),
            ));
        }
        let app = routes(self.state.clone());
        let signal = shutdown.clone();
        let closing = self.state.closing.clone();
        beacon_service::serve(
            self.listener,
            app,
            &self.state.config.server,
            ApiError::render_transport,
            async move {
                signal.cancelled().await;
                // Long-lived responses (event streams, WebSockets) end now, or the
                // graceful shutdown would wait for them forever.
                closing.cancel();
            },
        )
        .await?;
        shutdown.cancel();
        tracker.close();
        let grace = self.state.config.scheduler.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("shutdown grace of {grace:?} ran out with work still closing");
        }
        Ok(())
    }
}

/// A runner running in the background of this process.
pub struct RunnerHandle {
    pub url: String,
    /// The runner's receipt key (base64).
    pub public_key: String,
    service: beacon_service::ServiceHandle,
}

impl RunnerHandle {
    /// Graceful shutdown (SIGTERM semantics): work in flight goes back to `pending`.
    pub async fn shutdown(self) {
        self.service.shutdown().await;
    }
}

pub async fn start(config: Config) -> anyhow::Result<RunnerHandle> {
    let app = Application::build(config).await?;
    let public_key = app.public_key();
    let service =
        beacon_service::ServiceHandle::spawn("beacon-runner", app.local_addr(), move |token| {
            app.run(token)
        });
    Ok(RunnerHandle {
        url: service.url.clone(),
        public_key,
        service,
    })
}
