//! The concurrency gate: a first-come-first-served slot counter, like one GPU container,
//! whose limit can change at run time (`max_concurrency` in a fault patch).
//!
//! A tokio `Semaphore` cannot shrink or switch to "unlimited" without juggling forgotten
//! permits, so this keeps the count and a FIFO of waiters under one mutex. Raising the
//! limit admits waiters at once; lowering it lets running calls finish and admits no one
//! until the count is below the new limit.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub(crate) struct Gate {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    limit: Option<usize>,
    in_use: usize,
    next_ticket: u64,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Inner {
    fn has_room(&self) -> bool {
        self.limit.is_none_or(|l| self.in_use < l)
    }

    /// Takes a slot if one is free and nobody waits for one (a waiter goes first).
    fn take_free(&mut self) -> bool {
        let free = self.waiters.is_empty() && self.has_room();
        self.in_use += usize::from(free);
        free
    }

    /// Hands free slots to waiters in arrival order. The slot is counted here, before
    /// the waiter wakes, so a late newcomer cannot take it.
    fn grant(&mut self) {
        while self.has_room() {
            let Some((_, tx)) = self.waiters.pop_front() else {
                break;
            };
            // A waiter's receiver outlives its queue entry (see `Waiting`), so this only
            // fails if that invariant is broken; then the slot simply stays free.
            if tx.send(()).is_ok() {
                self.in_use += 1;
            }
        }
    }
}

/// A held slot; dropping it frees the slot for the next waiter.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: &'a Gate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A queue entry in progress. Its `Drop` runs before its `rx` field is dropped, so when a
/// waiting call is cancelled it either removes itself from the queue or, if a slot was
/// already handed to it, gives that slot back.
struct Waiting<'a> {
    gate: &'a Gate,
    ticket: u64,
    rx: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.gate.lock();
        if let Some(pos) = inner.waiters.iter().position(|(t, _)| *t == self.ticket) {
            inner.waiters.remove(pos);
        } else {
            inner.in_use = inner.in_use.saturating_sub(1);
            inner.grant();
        }
    }
}

impl Gate {
    pub fn new(limit: Option<usize>) -> Gate {
        Gate {
            inner: Mutex::new(Inner {
                limit,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic half-way, so a poisoned lock still holds
        // consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot now, if one is free and nobody is waiting for one.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.lock().take_free().then(|| Permit { gate: self })
    }

    /// Waits for a slot (FIFO).
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let mut waiting = {
                let mut inner = self.lock();
                if inner.take_free() {
                    return Permit { gate: self };
                }
                let (tx, rx) = oneshot::channel();
                let ticket = inner.next_ticket;
                inner.next_ticket += 1;
                inner.waiters.push_back((ticket, tx));
                Waiting {
                    gate: self,
                    ticket,
                    rx,
                    done: false,
                }
            };
            let granted = (&mut waiting.rx).await.is_ok();
            waiting.done = true;
            if granted {
                return Permit { gate: self };
            }
        }
    }

    fn release(&self) {
        let mut inner = self.lock();
        inner.in_use = inner.in_use.saturating_sub(1);
        inner.grant();
    }

    /// Changes the limit at run time (`None` = unlimited).
    pub fn set_limit(&self, limit: Option<usize>) {
        let mut inner = self.lock();
        inner.limit = limit;
        inner.grant();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::time::Duration;

    /// Whether `f` is still waiting after `ms` milliseconds.
    async fn still_waiting<F: std::future::Future>(f: Pin<&mut F>, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), f)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn limit_is_enforced_fifo_and_can_change() {
        let gate = Gate::new(Some(1));
        let first = gate.acquire().await;
        let second = gate.acquire();
        tokio::pin!(second);
        assert!(still_waiting(second.as_mut(), 20).await);
        drop(first);
        let second = second.await;
        gate.set_limit(Some(2));
        let third = tokio::time::timeout(Duration::from_millis(200), gate.acquire()).await;
        assert!(third.is_ok(), "raising the limit admits a waiter");
        drop(second);
        drop(third);
        assert_eq!(gate.lock().in_use, 0);
    }

    #[tokio::test]
    async fn try_acquire_takes_only_a_free_slot_nobody_waits_for() {
        let gate = Gate::new(Some(1));
        let held = gate.try_acquire().expect("a free slot");
        assert!(gate.try_acquire().is_none(), "the limit holds");
        let waiter = gate.acquire();
        tokio::pin!(waiter);
        assert!(still_waiting(waiter.as_mut(), 10).await);
        drop(held);
        // The freed slot went to the waiter, not to a newcomer.
        assert!(gate.try_acquire().is_none());
        drop(waiter.await);
        assert!(gate.try_acquire().is_some());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_slot_behind() {
        let gate = Gate::new(Some(1));
        let held = gate.acquire().await;
        {
            let waiter = gate.acquire();
            tokio::pin!(waiter);
            assert!(still_waiting(waiter.as_mut(), 10).await);
        }
        drop(held);
        assert_eq!(gate.lock().in_use, 0);
        assert!(gate.lock().waiters.is_empty());
        let _again = tokio::time::timeout(Duration::from_millis(200), gate.acquire())
            .await
            .expect("slot is free");
    }
}
