//! Waiting on a call: the shared wait (reply, cancellation or redirect deadline) and the
//! drop guards through which a request that goes away tells the engine, so an abandoned
//! call is recorded `cancelled_by_client` at once (hyper drops the handler future when
//! the client disconnects).

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, LiveCall};
use crate::reply::Reply;

/// What waiting on a call gave.
pub(crate) enum Waited {
    Reply(Arc<Reply>),
    /// The call was cancelled (shutdown, or its clients went away).
    Gone,
    TimedOut,
}

/// What a result-URL request finds.
pub(crate) enum Join {
    Unknown,
    /// The call exists but has no result to give (cancelled, not kept, or refused).
    NoResult,
    Ready(Arc<Reply>),
    Wait(Arc<LiveCall>, WaiterGuard),
}

/// Waits for a call's reply, its cancellation, or `limit` (no limit: wait forever).
pub(crate) async fn wait(call: &LiveCall, limit: Option<Duration>) -> Waited {
    let mut rx = call.result.subscribe();
    let ready = async {
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone())
    };
    let deadline = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        reply = ready => reply.map_or(Waited::Gone, Waited::Reply),
        _ = call.token.cancelled() => Waited::Gone,
        _ = deadline => Waited::TimedOut,
    }
}

/// Held by the original request while it waits: dropping it armed (the client went
/// away) cancels the call unless it was redirected.
pub(crate) struct OriginGuard {
    engine: Arc<Engine>,
    id: u64,
    armed: bool,
}

impl OriginGuard {
    pub fn new(engine: Arc<Engine>, id: u64) -> OriginGuard {
        OriginGuard {
            engine,
            id,
            armed: true,
        }
    }
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for OriginGuard {
    fn drop(&mut self) {
        if self.armed {
            self.engine.origin_gone(self.id);
        }
    }
}

/// Held by a result-URL request while it waits.
pub(crate) struct WaiterGuard {
    pub(crate) engine: Arc<Engine>,
    pub(crate) id: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.engine.leave(self.id);
    }
}
