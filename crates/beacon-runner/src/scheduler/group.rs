//! Group commit of the scheduler's attempt writes. Every execution writes twice (its
//! attempt's start and its end), each a transaction and a commit of its own; at
//! hundreds of executions per second those commits, not the calls, bound the runner
//! (docs/benchmarks.md). Here the writes that arrive while one is being written wait
//! for it and then go to the database together, as one [`Store::start_attempts`] or
//! [`Store::finish_attempts`].
//!
//! A write that something waits for (an attempt whose call can start at once, the
//! answers of a job's last round) is *urgent*: its group goes at once. Any other waits
//! while writes keep arriving ([`Gather`]): when a round of calls ends together, the
//! database then gets one large statement after the burst instead of a statement per
//! few answers in the middle of it, competing with the next round's calls for the same
//! cores.
//!
//! No task of its own: the first waiter to get a turn writes the queued group and
//! hands each member its result (leader and followers, as databases do it for their
//! own commits). The generic part is a few lines on tokio's fair semaphore, `Notify`
//! and oneshot channels; no kept crate batches async calls with per-member results,
//! urgency and a fallback.
//!
//! Each member keeps its own fence and its own outcome. When a group is refused (not an
//! outage), its members are written again one by one, so only the write the database
//! refuses is refused; an outage's error goes to every member, and each retries it on
//! its own (`writes::retrying`), which then joins the next group.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_store::{AttemptUpdate, StartedAttempt, Store, StoreError};
use chrono::Utc;
use tokio::sync::{Notify, Semaphore, oneshot};

/// The most writes one statement carries (PostgreSQL binds each column as one array;
/// SQLite holds its single write lock for the group).
const MAX_GROUP: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// How many groups of one kind the scheduler writes at once. Two: while one group's
/// statement runs, the next is already being sent, so neither the database nor the
/// runner waits for the other (on PostgreSQL; SQLite's single writer takes them in
/// turn anyway).
pub const TURNS: usize = 2;

/// How a group without an urgent write waits for more: until no write has joined it
/// for `lull`, for at most `wait`, and not at all once it holds `until`.
#[derive(Debug, Clone, Copy)]
pub struct Gather {
    pub lull: Duration,
    pub wait: Duration,
    pub until: usize,
}

/// The scheduler's gathering. At C = 90 a round's 90 answers end over 40-90 ms, and
/// each ending execution's successor starts an attempt ahead of its call slot: written
/// as they came (groups of 2-5), that was ~450 statements per 900-execution job on
/// PostgreSQL, in the middle of the next round's calls. Gathering until the burst is
/// over puts a round's writes in a few statements after it: the database's CPU per job
/// halved and each round's slowest chain of calls got ~4 ms shorter
/// (docs/benchmarks.md, "2026-12-05, fourth session"). Waiting costs nothing that
/// matters: the answers are already in (the router replays an answer to the same call
/// key if the runner dies first), the starts are ahead of their call slots, and a job
/// with nothing left to start marks its answers urgent. Nor do waiting answers hold up
/// a job whose executions in hand (twice its call limit) are fewer than `until`: once
/// every one of them is calling or being stored, none waits for a call slot, so the
/// next answer is urgent and takes the queued ones with it.
pub const GATHER: Gather = Gather {
    lull: Duration::from_millis(5),
    wait: Duration::from_millis(100),
    until: 128,
};

/// One queued write.
struct Queued<Req, Out> {
    req: Req,
    reply: Reply<Out>,
    urgent: bool,
}

/// Writes queued for the next group, and the turns to write one.
pub struct GroupCommit<Req, Out> {
    queue: Mutex<Vec<Queued<Req, Out>>>,
    turns: Semaphore,
    /// How a group without an urgent write waits for more.
    gather: Option<Gather>,
    /// Wakes a gathering writer: an urgent write was queued, or the group is full.
    grown: Notify,
}

impl<Req, Out> GroupCommit<Req, Out> {
    /// At most `turns` groups written at once.
    pub fn new(turns: usize) -> Self {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            turns: Semaphore::new(turns.max(1)),
            gather: None,
            grown: Notify::new(),
        }
    }

    /// A writer whose group has no urgent write waits for more as `gather` says.
    pub fn gathering(mut self, gather: Gather) -> Self {
        self.gather = Some(Gather {
            until: gather.until.max(1),
            ..gather
        });
        self
    }

    /// Queues `req` and returns its result, writing the queued group (with `write`)
    /// when this caller gets a turn before its write was taken into another group.
    /// An `urgent` write ends any wait for more. `write` returns one result per
    /// request, in order.
    pub async fn submit<W, Fut>(&self, req: Req, urgent: bool, write: W) -> Result<Out, StoreError>
    where
        W: Fn(Vec<Req>) -> Fut,
        Fut: Future<Output = Vec<Result<Out, StoreError>>>,
    {
        let (tx, mut rx) = oneshot::channel();
        {
            let mut queue = self.lock();
            queue.push(Queued {
                req,
                reply: tx,
                urgent,
            });
            let until = self.gather.map_or(1, |g| g.until);
            if urgent || queue.len() >= until {
                self.grown.notify_waiters();
            }
        }
        loop {
            tokio::select! {
                // A result already handed over wins over taking the turn.
                biased;
                r = &mut rx => return r.unwrap_or(Err(StoreError::GroupAbandoned)),
                Ok(turn) = self.turns.acquire() => {
                    if let Some(gather) = self.gather {
                        self.gather_for(gather).await;
                    }
                    let group: Vec<_> = {
                        let mut queue = self.lock();
                        let n = queue.len().min(MAX_GROUP);
                        queue.drain(..n).collect()
                    };
                    if group.is_empty() {
                        // This caller's write is in a group another caller is writing
                        // (or has written): wait for its answer.
                        drop(turn);
                        return rx.await.unwrap_or(Err(StoreError::GroupAbandoned));
                    }
                    let (reqs, replies): (Vec<_>, Vec<_>) =
                        group.into_iter().map(|q| (q.req, q.reply)).unzip();
                    let mut results = write(reqs).await.into_iter();
                    for reply in replies {
                        let r = results.next().unwrap_or(Err(StoreError::GroupAbandoned));
                        let _ = reply.send(r);
                    }
                    drop(turn);
                }
            }
        }
    }

    /// Waits until the queue holds an urgent write or `until` writes, is empty (another
    /// writer took it), no write has joined for `lull`, or `wait` has passed.
    async fn gather_for(&self, g: Gather) {
        let end = tokio::time::Instant::now() + g.wait;
        let mut seen = 0;
        loop {
            // Registered before the check, so a write queued in between still wakes it.
            let grown = self.grown.notified();
            tokio::pin!(grown);
            grown.as_mut().enable();
            let queued = {
                let queue = self.lock();
                if queue.is_empty() || queue.len() >= g.until || queue.iter().any(|q| q.urgent) {
                    return;
                }
                queue.len()
            };
            if queued == seen || tokio::time::Instant::now() >= end {
                return;
            }
            seen = queued;
            // Writes that merely join do not wake the writer: it looks again after a
            // lull, and goes if nothing joined meanwhile.
            let look = (tokio::time::Instant::now() + g.lull).min(end);
            tokio::select! {
                _ = grown => {}
                _ = tokio::time::sleep_until(look) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued<Req, Out>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The group's result for each member: the group write's own, or on a refusal each
/// member's own write (`one`), so one bad write does not sink the others.
async fn per_member<Req, Out, G, O, OFut>(
    reqs: Vec<Req>,
    group: G,
    one: O,
) -> Vec<Result<Out, StoreError>>
where
    G: Future<Output = Result<Vec<Out>, StoreError>>,
    O: Fn(Req) -> OFut,
    OFut: Future<Output = Result<Out, StoreError>>,
{
    let n = reqs.len();
    match group.await {
        Ok(outs) => outs.into_iter().map(Ok).collect(),
        Err(e) if n > 1 && !e.is_transient() => {
            tracing::warn!(writes = n, error = %e, "a group write was refused; writing its members one by one");
            let mut out = Vec::with_capacity(n);
            for req in reqs {
                out.push(one(req).await);
            }
            out
        }
        Err(e) => {
            let e = Arc::new(e);
            (0..n).map(|_| Err(StoreError::Group(e.clone()))).collect()
        }
    }
}

/// Starts the attempts of `ids` as one group.
pub async fn start_group(
    store: &dyn Store,
    owner: &str,
    ids: Vec<String>,
) -> Vec<Result<Option<StartedAttempt>, StoreError>> {
    let now = Utc::now();
    per_member(
        ids.clone(),
        store.start_attempts(&ids, owner, now),
        |id: String| async move { store.start_attempt(&id, owner, now).await },
    )
    .await
}

/// Ends the attempts of `updates` as one group.
pub async fn finish_group(
    store: &dyn Store,
    owner: &str,
    updates: Vec<AttemptUpdate>,
) -> Vec<Result<bool, StoreError>> {
    let group = store.finish_attempts(&updates, owner);
    let outs = per_member((0..updates.len()).collect(), group, |i: usize| {
        store.finish_attempt(&updates[i], owner)
    });
    outs.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Writes that arrive while a group is being written go together in the next one,
    /// each member gets its own result, and a lone write goes at once.
    #[tokio::test]
    async fn writes_arriving_during_a_group_are_written_together() {
        let gc = Arc::new(GroupCommit::<u32, u32>::new(1));
        let groups = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let (release, gate) = tokio::sync::watch::channel(false);
        let write = {
            let groups = groups.clone();
            move |reqs: Vec<u32>| {
                let groups = groups.clone();
                let mut gate = gate.clone();
                async move {
                    groups.lock().unwrap().push(reqs.clone());
                    // The first group is held until the others have queued.
                    let _ = gate.wait_for(|open| *open).await;
                    reqs.into_iter().map(|r| Ok(r * 10)).collect()
                }
            }
        };
        let first = tokio::spawn({
            let (gc, write) = (gc.clone(), write.clone());
            async move { gc.submit(1, false, write).await }
        });
        while groups.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let rest: Vec<_> = (2..=5)
            .map(|r| {
                let (gc, write, queued) = (gc.clone(), write.clone(), queued.clone());
                tokio::spawn(async move {
                    let f = gc.submit(r, false, write);
                    queued.fetch_add(1, Ordering::SeqCst);
                    f.await
                })
            })
            .collect();
        while queued.load(Ordering::SeqCst) < 4 || gc.lock().len() < 4 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 10);
        for (i, t) in rest.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), (i as u32 + 2) * 10);
        }
        let mut seen = groups.lock().unwrap().clone();
        seen[1].sort();
        assert_eq!(seen, vec![vec![1], vec![2, 3, 4, 5]]);
    }

    /// With two turns, a caller whose write another caller already took into its
    /// group gets that group's answer instead of writing an empty group.
    #[tokio::test]
    async fn a_write_taken_into_another_group_gets_that_groups_answer() {
        let gc = Arc::new(GroupCommit::<u32, u32>::new(2));
        let writes = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let write = {
            let writes = writes.clone();
            move |reqs: Vec<u32>| {
                writes.fetch_add(1, Ordering::SeqCst);
                let mut gate = gate.clone();
                async move {
                    // In flight while the other caller gets its turn.
                    let _ = gate.wait_for(|open| *open).await;
                    reqs.into_iter().map(|r| Ok(r + 100)).collect()
                }
            }
        };
        // Both turns busy until both writes are queued; then both callers get a turn,
        // and whichever comes first takes both writes.
        let busy = gc.turns.acquire_many(2).await.unwrap();
        let callers: Vec<_> = [1, 2]
            .map(|r| {
                let (gc, write) = (gc.clone(), write.clone());
                tokio::spawn(async move { gc.submit(r, false, write).await })
            })
            .into_iter()
            .collect();
        while gc.lock().len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        while writes.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Let the other caller take its turn while the group is in flight.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        let mut answers = Vec::new();
        for c in callers {
            answers.push(c.await.unwrap().unwrap());
        }
        assert_eq!(answers, [101, 102]);
        assert_eq!(writes.load(Ordering::SeqCst), 1, "one group, not two");
    }

    /// A gathering writer whose group is small waits for more writes to join it, and
    /// writes the group the moment it is full; one that finds a full queue does not
    /// wait at all; a lone write waits one lull.
    #[tokio::test(start_paused = true)]
    async fn a_small_group_waits_until_it_is_full_and_a_full_one_does_not() {
        let lull = Duration::from_millis(4);
        let (gc, groups) = recorded(4, 20, 3);
        let t0 = tokio::time::Instant::now();
        // The first writer finds itself alone and waits; the next two fill its group.
        let first = submit(&gc, &groups, 1, false);
        queued(&gc, 1).await;
        tokio::time::sleep(lull / 2).await;
        let (second, third) = (
            submit(&gc, &groups, 2, false),
            submit(&gc, &groups, 3, false),
        );
        for (t, want) in [(first, 10), (second, 20), (third, 30)] {
            assert_eq!(t.await.unwrap().unwrap(), want);
        }
        // Three queued at once (the threshold): written without waiting.
        let t1 = tokio::time::Instant::now();
        let turn = gc.turns.acquire().await.unwrap();
        let late: Vec<_> = (4..=6).map(|r| submit(&gc, &groups, r, false)).collect();
        queued(&gc, 3).await;
        drop(turn);
        for t in late {
            t.await.unwrap().unwrap();
        }
        // A lone write waits for a lull in which nothing joins it, then goes alone.
        let t2 = tokio::time::Instant::now();
        assert_eq!(submit(&gc, &groups, 7, false).await.unwrap().unwrap(), 70);
        let seen = groups.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].0, vec![1, 2, 3]);
        assert_eq!(seen[0].1 - t0, lull / 2, "the group went when it was full");
        let mut second_group = seen[1].0.clone();
        second_group.sort();
        assert_eq!(second_group, vec![4, 5, 6]);
        assert_eq!(seen[1].1, t1, "the full group did not wait");
        assert_eq!(seen[2], (vec![7], t2 + lull));
    }

    /// Writes that keep joining keep the group waiting, but no longer than `wait`.
    #[tokio::test(start_paused = true)]
    async fn a_group_waits_while_writes_keep_coming_and_at_most_wait() {
        let (gc, groups) = recorded(4, 10, 100);
        let t0 = tokio::time::Instant::now();
        let mut calls = vec![submit(&gc, &groups, 1, false)];
        // One more every 3 ms: each lands within the writer's lull.
        for r in 2..=5 {
            tokio::time::sleep(Duration::from_millis(3)).await;
            calls.push(submit(&gc, &groups, r, false));
        }
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let seen = groups.lock().unwrap().clone();
        let wait = Duration::from_millis(10);
        assert_eq!(seen[0], (vec![1, 2, 3, 4], t0 + wait), "{seen:?}");
        assert_eq!(seen[1].0, vec![5]);
    }

    /// An urgent write ends the wait of the group it joins, and an urgent write that
    /// finds the queue empty goes at once.
    #[tokio::test(start_paused = true)]
    async fn an_urgent_write_does_not_wait() {
        let (gc, groups) = recorded(4, 20, 100);
        let t0 = tokio::time::Instant::now();
        let first = submit(&gc, &groups, 1, false);
        queued(&gc, 1).await;
        // Whole milliseconds: tokio's timer, paused or not, counts in them.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let urgent = submit(&gc, &groups, 2, true);
        assert_eq!(first.await.unwrap().unwrap(), 10);
        assert_eq!(urgent.await.unwrap().unwrap(), 20);
        let t1 = tokio::time::Instant::now();
        assert_eq!(submit(&gc, &groups, 3, true).await.unwrap().unwrap(), 30);
        let seen = groups.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![(vec![1, 2], t0 + Duration::from_millis(2)), (vec![3], t1)]
        );
    }

    type Recorded = Arc<Mutex<Vec<(Vec<u32>, tokio::time::Instant)>>>;

    /// A gathering group commit, and the record of the groups it writes.
    fn recorded(
        lull_ms: u64,
        wait_ms: u64,
        until: usize,
    ) -> (Arc<GroupCommit<u32, u32>>, Recorded) {
        let gather = Gather {
            lull: Duration::from_millis(lull_ms),
            wait: Duration::from_millis(wait_ms),
            until,
        };
        (
            Arc::new(GroupCommit::new(1).gathering(gather)),
            Arc::default(),
        )
    }

    /// Submits `r` as a task; the group write records the group and when it was
    /// written, and answers ten times each request.
    fn submit(
        gc: &Arc<GroupCommit<u32, u32>>,
        groups: &Recorded,
        r: u32,
        urgent: bool,
    ) -> tokio::task::JoinHandle<Result<u32, StoreError>> {
        let (gc, groups) = (gc.clone(), groups.clone());
        tokio::spawn(async move {
            let write = |reqs: Vec<u32>| {
                groups
                    .lock()
                    .unwrap()
                    .push((reqs.clone(), tokio::time::Instant::now()));
                std::future::ready(reqs.into_iter().map(|r| Ok(r * 10)).collect())
            };
            gc.submit(r, urgent, write).await
        })
    }

    /// Waits until `n` writes are queued.
    async fn queued(gc: &GroupCommit<u32, u32>, n: usize) {
        while gc.lock().len() < n {
            tokio::task::yield_now().await;
        }
    }

    /// A refused group is written member by member, so only the bad one fails; an
    /// outage reaches every member as a transient error.
    #[tokio::test]
    async fn a_refused_group_falls_back_to_single_writes() {
        let refused = per_member(
            vec![1, 2, 3],
            async { Err::<Vec<u32>, _>(StoreError::Corrupt("no".into())) },
            |r: u32| async move {
                if r == 2 {
                    Err(StoreError::Corrupt("bad".into()))
                } else {
                    Ok(r)
                }
            },
        )
        .await;
        assert!(matches!(refused[0], Ok(1)));
        assert!(matches!(refused[1], Err(StoreError::Corrupt(_))));
        assert!(matches!(refused[2], Ok(3)));

        let singles = AtomicUsize::new(0);
        let outage = per_member(
            vec![1, 2],
            async { Err::<Vec<u32>, _>(StoreError::Database(sqlx::Error::PoolTimedOut)) },
            |r: u32| {
                singles.fetch_add(1, Ordering::SeqCst);
                async move { Ok(r) }
            },
        )
        .await;
        assert_eq!(singles.load(Ordering::SeqCst), 0);
        assert!(
            outage
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| e.is_transient()))
        );
    }
}
