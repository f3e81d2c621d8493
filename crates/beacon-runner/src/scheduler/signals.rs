//! Cancels across instances. The instance that answers a cancel commits it; the
//! database tells every instance (PostgreSQL `NOTIFY`, see beacon-store); the one
//! that runs the job stops its token at once, waits for its calls in flight to close,
//! and says so; the answering instance waits for that before it answers, so no call
//! starts after the answer whichever instance gave it. The lease heartbeat's poll of
//! `cancel_requested_at` stays the fallback for a signal lost while a connection was
//! down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_store::Signal;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Ctx, StopReason};

/// How long the owner of a cancelled job waits for its calls to close before it
/// reports them stopped anyway (they are aborted; this only bounds the wait).
pub const CALLS_CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Pause before listening again after the database refused.
const RELISTEN: Duration = Duration::from_secs(1);

/// Cancel routes of this instance waiting for another instance's "calls stopped".
#[derive(Default)]
pub struct CancelAcks {
    waiting: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
}

/// One route's wait for the owner of `job`; registered before the cancel is
/// committed, so an acknowledgement cannot arrive before anyone listens for it.
pub struct AckWait<'a> {
    acks: &'a CancelAcks,
    job: String,
    notify: Arc<Notify>,
}

impl CancelAcks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Notify>, usize)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn expect(&self, job: &str) -> AckWait<'_> {
        let mut map = self.lock();
        let entry = map
            .entry(job.to_string())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        AckWait {
            acks: self,
            job: job.to_string(),
            notify: entry.0.clone(),
        }
    }

    fn done(&self, job: &str) {
        if let Some((notify, _)) = self.lock().get(job) {
            notify.notify_waiters();
        }
    }
}

impl AckWait<'_> {
    /// The wake-up to await: create it (and `enable` it) before committing the
    /// cancel; `Notified` futures created before a `notify_waiters` receive it.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for AckWait<'_> {
    fn drop(&mut self) {
        let mut map = self.acks.lock();
        if let Some(entry) = map.get_mut(&self.job) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.job);
            }
        }
    }
}

/// Listens until `token` is cancelled. Returns at once where the store has no
/// signals (SQLite: one instance, which answers its own cancels).
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken, tracker: TaskTracker) {
    loop {
        let mut stream = match ctx.store.listen().await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cancel signals yet; the heartbeat covers meanwhile");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(RELISTEN) => continue,
                }
            }
        };
        tracing::info!("listening for cancel signals from other instances");
        let mut down = false;
        loop {
            let next = tokio::select! {
                _ = token.cancelled() => return,
                n = stream.recv() => n,
            };
            match next {
                Ok(signal) => {
                    if down {
                        tracing::info!("cancel signals: connected again");
                        down = false;
                    }
                    match signal {
                        Some(Signal::CancelRequested(job)) => on_cancel(&ctx, &tracker, job),
                        Some(Signal::CancelDone(job)) => ctx.acks.done(&job),
                        // Reconnected: a cancel may have been missed meanwhile.
                        None => resync(&ctx, &tracker).await,
                    }
                }
                Err(e) => {
                    if !down {
                        tracing::warn!(error = %e, "cancel signals: the database does not answer; retrying (the heartbeat covers meanwhile)");
                        down = true;
                    }
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(RELISTEN) => {}
                    }
                }
            }
        }
    }
}

/// A cancel was committed somewhere: if this instance runs the job, stop it, wait for
/// its calls to close, and tell the answering instance.
fn on_cancel(ctx: &Arc<Ctx>, tracker: &TaskTracker, job: String) {
    let Some(control) = ctx.jobs.get(&job) else {
        return;
    };
    control.stop(StopReason::UserCancel);
    let ctx = ctx.clone();
    tracker.spawn(async move {
        if !control.wait_idle(CALLS_CLOSE_WAIT).await {
            tracing::warn!(job = %job, "cancel: calls still closing after {CALLS_CLOSE_WAIT:?}");
        }
        if let Err(e) = ctx.store.notify_cancel_done(&job).await {
            tracing::warn!(job = %job, error = %e, "cannot acknowledge the cancel; the canceller times out instead");
        }
    });
}

async fn resync(ctx: &Arc<Ctx>, tracker: &TaskTracker) {
    for id in ctx.jobs.ids() {
        if let Ok(Some(job)) = ctx.store.get_job(&id).await {
            if job.cancel_requested_at.is_some() {
                on_cancel(ctx, tracker, id);
            }
        }
    }
}
