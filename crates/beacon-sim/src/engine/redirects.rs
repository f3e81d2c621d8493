//! The result-URL side of the engine: redirecting a call that outlives
//! `redirect_after`, joining and leaving its result URL, and cancelling calls that no
//! client waits for any more (the cancellation rules are in the parent module's doc).

use std::sync::Arc;

use super::{Engine, Live, LiveCall, lock};
use crate::reply::Reply;
use crate::stats::{Outcome, Phase};
use crate::waiting::{Join, WaiterGuard};

impl Engine {
    /// Ends a call as `cancelled_by_client` if `still_abandoned` holds, checked and
    /// recorded under one lock so a client arriving meanwhile cannot be cut off; then
    /// stops its task.
    fn cancel_if(&self, id: u64, still_abandoned: impl FnOnce(&mut Live) -> bool) {
        let call = {
            let mut st = lock(&self.state);
            let Some(live) = st.live.get_mut(&id) else {
                return;
            };
            if !still_abandoned(live) {
                return;
            }
            let call = live.call.clone();
            if !self.finish_locked(&mut st, id, Outcome::CancelledByClient, None, None) {
                return;
            }
            call
        };
        call.token.cancel();
    }

    /// The original request went away before its answer was written.
    pub(crate) fn origin_gone(&self, id: u64) {
        self.cancel_if(id, |l| {
            if l.redirected || l.phase == Phase::Ended {
                return false;
            }
            if l.waiters > 0 {
                // Someone already waits on the result URL: the call now belongs to them.
                l.redirected = true;
                return false;
            }
            true
        });
    }

    /// Turns a timed-out wait into a 303, unless the call ended meanwhile.
    pub fn redirect(self: &Arc<Self>, call: &LiveCall) -> Result<(), Option<Arc<Reply>>> {
        let orphan = {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let live = match st.live.get_mut(&call.id) {
                Some(live) if live.phase != Phase::Ended => live,
                _ => return Err(call.result.borrow().clone()),
            };
            live.redirected = true;
            let orphan = (live.waiters == 0).then_some(live.epoch);
            st.log.note_redirect(call.id);
            orphan
        };
        if let Some(epoch) = orphan {
            self.schedule_orphan_check(call.id, epoch);
        }
        Ok(())
    }

    /// A result-URL request: the reply if ready, else a registration as waiter.
    pub fn join(self: &Arc<Self>, id: u64) -> Join {
        let mut st = lock(&self.state);
        let known = id >= 1 && id <= st.log.last_id();
        let Some(live) = st.live.get_mut(&id) else {
            return if known { Join::NoResult } else { Join::Unknown };
        };
        if live.phase == Phase::Ended {
            return match live.call.result.borrow().clone() {
                Some(r) => Join::Ready(r),
                None => Join::NoResult,
            };
        }
        live.waiters += 1;
        live.epoch += 1;
        Join::Wait(
            live.call.clone(),
            WaiterGuard {
                engine: self.clone(),
                id,
            },
        )
    }

    pub(crate) fn leave(self: &Arc<Self>, id: u64) {
        let mut st = lock(&self.state);
        let Some(live) = st.live.get_mut(&id) else {
            return;
        };
        live.waiters = live.waiters.saturating_sub(1);
        // Without a redirect the original request still owns the call.
        if live.waiters > 0 || live.phase == Phase::Ended || !live.redirected {
            return;
        }
        let epoch = live.epoch;
        drop(st);
        self.schedule_orphan_check(id, epoch);
    }

    fn schedule_orphan_check(self: &Arc<Self>, id: u64, epoch: u64) {
        // Guards run in destructors, possibly while the runtime itself is being torn
        // down; then there is nothing left to cancel for.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = self.clone();
        let token = self.token.clone();
        let grace = self.orphan_grace;
        self.tracker.spawn_on(
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(grace) => engine.orphan_check(id, epoch),
                }
            },
            &handle,
        );
    }

    fn orphan_check(&self, id: u64, epoch: u64) {
        self.cancel_if(id, |l| {
            l.redirected && l.phase != Phase::Ended && l.waiters == 0 && l.epoch == epoch
        });
    }
}
