//! Per-job control: the job's cancellation token, why it was stopped, how many of its
//! router calls are in flight (the cancel route waits for them to close before it
//! answers, so no call outlives the acknowledgement), and whether its lease is in
//! doubt (no new call starts while it is).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a job's token was cancelled. No reason recorded = the process is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    UserCancel,
    /// `min_success_rate` can no longer be reached.
    EarlyStop,
    Deadline,
    LeaseLost,
}

pub struct JobControl {
    pub job_id: String,
    pub token: CancellationToken,
    /// The job's router calls in flight (`max_concurrency_per_job`). The job keeps more
    /// executions in hand than it may call at once, so the next call's attempt row is
    /// already written when a call slot frees up.
    pub calls: Arc<tokio::sync::Semaphore>,
    reason: OnceLock<StopReason>,
    in_flight: AtomicUsize,
    /// Executions between the start of an attempt and getting a call slot.
    waiting: AtomicUsize,
    /// Notified when an execution stops waiting and every call slot is taken.
    slots_taken: Notify,
    idle: Notify,
    /// `true` while the lease could not be renewed for longer than it lasts.
    lease_doubt: tokio::sync::watch::Sender<bool>,
}

/// Counts one router call in flight while alive.
pub struct CallGuard<'a>(&'a JobControl);

/// Counts one execution from the start of its attempt until it has a call slot (or
/// gives up), while alive.
pub struct Waiting<'a> {
    control: &'a JobControl,
    /// A call slot of the job was free for this execution when it started waiting:
    /// the start of its attempt is what its call waits for.
    pub urgent: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.control.waiting.fetch_sub(1, Ordering::AcqRel);
        if self.control.calls.available_permits() == 0 {
            self.control.slots_taken.notify_one();
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl JobControl {
    /// Records the first reason and cancels the token.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    pub fn call(&self) -> CallGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        CallGuard(self)
    }

    /// Counts an execution as waiting for a call slot; see [`Waiting::urgent`].
    pub fn waiting(&self) -> Waiting<'_> {
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting {
            control: self,
            urgent: ahead < self.calls.available_permits(),
        }
    }

    /// Executions of the job that wait for a call slot now: none in a job's last
    /// round (everything left is in flight).
    pub fn waiting_for_slots(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Waits until every call slot of the job is taken.
    pub async fn slots_taken(&self) {
        while self.calls.available_permits() > 0 {
            self.slots_taken.notified().await;
        }
    }

    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The heartbeat's verdict: `true` when the lease could not be renewed for a lease
    /// period (the database is unreachable, so another instance might take the job
    /// over once it is back), `false` once a renewal succeeded again.
    pub fn set_lease_doubt(&self, doubt: bool) {
        self.lease_doubt
            .send_if_modified(|d| std::mem::replace(d, doubt) != doubt);
    }

    /// Waits while the lease is in doubt. `false` if the job was stopped meanwhile.
    pub async fn wait_lease_confirmed(&self) -> bool {
        let mut rx = self.lease_doubt.subscribe();
        tokio::select! {
            _ = self.token.cancelled() => false,
            r = rx.wait_for(|doubt| !doubt) => r.is_ok() && !self.token.is_cancelled(),
        }
    }

    /// Waits until no router call of this job is in flight, at most `limit`.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.calls_in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.calls_in_flight() == 0;
            }
        }
    }
}

/// The jobs this instance is running.
#[derive(Default)]
pub struct Registry {
    jobs: Mutex<HashMap<String, Arc<JobControl>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JobControl>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(
        &self,
        job_id: &str,
        token: CancellationToken,
        calls_per_job: u32,
    ) -> Arc<JobControl> {
        let control = Arc::new(JobControl {
            job_id: job_id.to_string(),
            token,
            calls: Arc::new(tokio::sync::Semaphore::new(calls_per_job as usize)),
            reason: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            slots_taken: Notify::new(),
            idle: Notify::new(),
            lease_doubt: tokio::sync::watch::Sender::new(false),
        });
        self.lock().insert(job_id.to_string(), control.clone());
        control
    }

    pub fn get(&self, job_id: &str) -> Option<Arc<JobControl>> {
        self.lock().get(job_id).cloned()
    }

    pub fn remove(&self, job_id: &str) {
        self.lock().remove(job_id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An execution's start is urgent while the job has a call slot nobody waiting
    /// ahead of it will take: the first wave's are, the executions started ahead of
    /// their slots are not, and a slot that frees up makes the next start urgent.
    #[tokio::test]
    async fn a_start_is_urgent_only_when_a_call_slot_is_free_for_it() {
        let jobs = Registry::default();
        let control = jobs.insert("j", CancellationToken::new(), 2);
        let first = control.waiting();
        let second = control.waiting();
        let third = control.waiting();
        assert!(first.urgent && second.urgent && !third.urgent);
        // The first two take their slots: both are in use, the third still waits.
        let one = control.calls.clone().acquire_owned().await.unwrap();
        let _two = control.calls.clone().acquire_owned().await.unwrap();
        drop((first, second));
        assert!(!control.waiting().urgent, "no slot free, one waiting ahead");
        // A call ends: its slot is the waiting third's, so the next start waits.
        drop(one);
        assert!(
            !control.waiting().urgent,
            "the free slot is the waiting one's"
        );
        drop(third);
        assert!(control.waiting().urgent);
    }

    /// `slots_taken` waits while a call slot is free, and ends when the execution that
    /// takes the last one stops waiting.
    #[tokio::test]
    async fn slots_taken_waits_for_the_last_slot_to_be_taken() {
        let jobs = Registry::default();
        let control = jobs.insert("j", CancellationToken::new(), 2);
        let (first, second) = (control.waiting(), control.waiting());
        let _one = control.calls.clone().acquire_owned().await.unwrap();
        drop(first);
        let taken = control.slots_taken();
        tokio::pin!(taken);
        assert!(
            futures_util::FutureExt::now_or_never(taken.as_mut()).is_none(),
            "a slot is still free"
        );
        let _two = control.calls.clone().acquire_owned().await.unwrap();
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(5), taken)
            .await
            .expect("every slot is taken");
    }
}
