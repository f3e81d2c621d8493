//! The service time's timer: a call's latency ends when it is due, to the microsecond.
//!
//! tokio's timer wheel counts whole milliseconds and rounds a deadline up to the next
//! one, and its driver wakes from `epoll_wait`, whose timeout is in milliseconds too: a
//! "200 ms" call was served in 200.5-201.5 ms on a quiet machine (1.4 ms late on
//! average in the orchestration benchmark, 2.7 ms on the job's slowest chain of calls),
//! and every round of a job measured against `rounds x latency` carried that lateness
//! as if it were the runner's. On Linux a `timerfd` (through `tokio-timerfd`, one per
//! waiting call) makes the reactor wake when the deadline passes; elsewhere, or when no
//! timer can be made (out of descriptors), tokio's timer serves.

use tokio::time::Instant;

/// Waits until `at`.
pub(crate) async fn sleep_until(at: Instant) {
    #[cfg(target_os = "linux")]
    if let Ok(delay) = tokio_timerfd::Delay::new(at.into_std()) {
        if delay.await.is_ok() {
            return;
        }
    }
    // Returns at once when `at` has passed (a timerfd that failed half-way).
    tokio::time::sleep_until(at).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The wait ends after its deadline, and on Linux a fraction of a millisecond
    /// after it: tokio's wheel, which rounds deadlines up to its next millisecond tick,
    /// is a quarter of a millisecond late or more in a quarter of its waits. The first
    /// quartile of 24 waits, so a loaded machine's slow wake-ups do not decide.
    #[tokio::test]
    async fn ends_after_the_deadline_and_close_to_it() {
        let mut late = Vec::new();
        for i in 0..24u64 {
            let at = Instant::now() + Duration::from_micros(2_000 + 137 * i);
            sleep_until(at).await;
            let now = Instant::now();
            assert!(now >= at, "woke {:?} early", at - now);
            late.push(now - at);
        }
        late.sort();
        let quartile = late[late.len() / 4];
        if cfg!(target_os = "linux") {
            assert!(quartile < Duration::from_micros(200), "{late:?}");
        }
    }
}
