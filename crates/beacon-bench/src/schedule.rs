//! The open-loop schedule: request `i` is due at `start + i / rate`, whatever happened to
//! earlier requests, and the pacing thread that releases each request at its due time.
//! Latency is measured from the due time, so a stalled server cannot hide its queue
//! (no coordinated omission); the pacer records how late it released each request.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

/// Requests due at a fixed rate from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    /// Requests per second (> 0).
    pub rate: f64,
    /// How many requests the schedule holds.
    pub count: u64,
}

impl Schedule {
    /// `count_for(rate, duration)` requests from `start`.
    pub fn new(start: Instant, rate: f64, duration: Duration) -> Schedule {
        Schedule {
            start,
            rate,
            count: count_for(rate, duration),
        }
    }

    /// When request `i` is due. Computed from `i` directly, not by adding intervals,
    /// so a rate whose interval is not a whole number of nanoseconds does not drift.
    pub fn due(&self, i: u64) -> Instant {
        self.start + offset(self.rate, i)
    }
}

/// How many requests `duration` holds at `rate` per second (rounded to the nearest).
pub fn count_for(rate: f64, duration: Duration) -> u64 {
    if !(rate.is_finite() && rate > 0.0) {
        return 0;
    }
    (rate * duration.as_secs_f64()).round() as u64
}

/// Offset of request `i` from the start at `rate` per second, to the nearest nanosecond.
fn offset(rate: f64, i: u64) -> Duration {
    Duration::from_nanos((i as f64 * 1e9 / rate).round() as u64)
}

/// The rate actually achieved: `sent` requests released over `span`, where `span`
/// runs from the schedule's start to the release of the last request plus one interval
/// (so a perfectly paced schedule achieves exactly its rate).
pub fn achieved_rate(rate: f64, sent: u64, start: Instant, last_release: Instant) -> f64 {
    let span = last_release.saturating_duration_since(start) + offset(rate, 1);
    if span.is_zero() {
        return 0.0;
    }
    sent as f64 / span.as_secs_f64()
}

/// One request released by the pacer.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Index of the request within the run (varies the prompt).
    pub index: u64,
    /// When it was due: latency is measured from here.
    pub due: Instant,
    /// When the pacer actually released it.
    pub released: Instant,
}

/// What the pacer saw.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Release time minus due time of each request, in nanoseconds.
    pub lags_ns: Vec<u64>,
    pub sent: u64,
    pub last_release: Instant,
}

/// Releases the schedule's requests at their due times into `jobs` (blocking: run it
/// on its own thread). Sleeps with the OS timer, whose resolution is tens of
/// microseconds, instead of the async runtime's millisecond timer wheel. Requests are
/// numbered from `first_index`. Stops early if every receiver is gone.
pub fn pace(schedule: Schedule, first_index: u64, jobs: UnboundedSender<Job>) -> Pacing {
    let mut lags_ns = Vec::with_capacity(usize::try_from(schedule.count).unwrap_or(0));
    let mut last_release = schedule.start;
    let mut sent = 0;
    for i in 0..schedule.count {
        let due = schedule.due(i);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let released = Instant::now();
        let job = Job {
            index: first_index + i,
            due,
            released,
        };
        if jobs.send(job).is_err() {
            break;
        }
        lags_ns.push(nanos(released.saturating_duration_since(due)));
        last_release = released;
        sent += 1;
    }
    Pacing {
        lags_ns,
        sent,
        last_release,
    }
}

/// A duration in whole nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_rate_and_duration() {
        assert_eq!(count_for(1000.0, Duration::from_secs(5)), 5000);
        assert_eq!(count_for(1000.0, Duration::from_millis(2500)), 2500);
        assert_eq!(count_for(200.0, Duration::from_millis(2500)), 500);
        assert_eq!(count_for(3.0, Duration::from_millis(500)), 2); // 1.5 rounds up
        assert_eq!(count_for(0.0, Duration::from_secs(5)), 0);
        assert_eq!(count_for(f64::NAN, Duration::from_secs(5)), 0);
    }

    #[test]
    fn due_times_are_evenly_spaced_and_do_not_drift() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_secs(5));
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(1) - s.due(0), Duration::from_millis(1));
        assert_eq!(s.due(4999) - start, Duration::from_millis(4999));
        assert_eq!(s.count, 5000);
        // 1/3 s is not a whole number of nanoseconds; request 3,000 is still at 1,000 s.
        let thirds = Schedule::new(start, 3.0, Duration::from_secs(1000));
        assert_eq!(thirds.due(3000) - start, Duration::from_secs(1000));
    }

    #[test]
    fn a_perfect_pacer_achieves_the_rate() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_secs(2));
        let rate = achieved_rate(1000.0, s.count, start, s.due(s.count - 1));
        assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
        // Releasing the last request 1 s late over a 2 s schedule: two thirds of the rate.
        let late = s.due(s.count - 1) + Duration::from_secs(1);
        let rate = achieved_rate(1000.0, s.count, start, late);
        assert!((rate - 666.666).abs() < 0.1, "{rate}");
    }

    #[test]
    fn the_pacer_releases_every_job_in_order_not_early() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let s = Schedule::new(Instant::now(), 2000.0, Duration::from_millis(10));
        let pacing = pace(s, 100, tx);
        assert_eq!((pacing.sent, pacing.lags_ns.len()), (20, 20));
        let mut expected = 100;
        while let Ok(job) = rx.try_recv() {
            assert_eq!(job.index, expected);
            assert!(job.released >= job.due);
            expected += 1;
        }
        assert_eq!(expected, 120);
    }
}
