//! The providers' side of a job, from the simulators' call logs: how many calls, how
//! many were open at once (exactly, by sweeping start and end times), when the first
//! started and the last ended, and the time spent inside calls. Against the job's
//! elapsed time this splits the runner's cost into dispatch (202 answer → first call),
//! the gaps between a slot's calls, and the tail (last call → job terminal).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::api::SimCall;

/// The job's calls as the simulators saw them (health probes excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallView {
    pub calls: u64,
    /// Calls that had not ended when the log was read.
    pub unfinished: u64,
    /// Calls that ended with something other than `ok`.
    pub not_ok: u64,
    /// Most calls open at the same instant, all simulators together.
    pub max_overlap: u64,
    pub first_start: Option<DateTime<Utc>>,
    pub last_end: Option<DateTime<Utc>>,
    /// Sum of the calls' durations.
    pub busy: Duration,
}

impl CallView {
    /// `calls` from every simulator; those whose prompt hashes to `probe_sha256` (the
    /// router's health probes) are left out.
    pub fn of(calls: &[SimCall], probe_sha256: &str) -> CallView {
        let mut view = CallView::default();
        let mut events: Vec<(DateTime<Utc>, i64)> = Vec::new();
        for c in calls.iter().filter(|c| c.prompt_sha256 != probe_sha256) {
            view.calls += 1;
            view.first_start = Some(
                view.first_start
                    .map_or(c.started_at, |t| t.min(c.started_at)),
            );
            if c.outcome != "ok" {
                view.not_ok += 1;
            }
            events.push((c.started_at, 1));
            match c.ended_at {
                Some(end) => {
                    view.last_end = Some(view.last_end.map_or(end, |t| t.max(end)));
                    view.busy += (end - c.started_at).to_std().unwrap_or_default();
                    events.push((end, -1));
                }
                None => view.unfinished += 1,
            }
        }
        // At equal times an end comes before a start: a slot handed straight on is
        // one call open, not two.
        events.sort_unstable();
        let mut open = 0i64;
        for (_, delta) in events {
            open += delta;
            view.max_overlap = view.max_overlap.max(open.max(0) as u64);
        }
        view
    }

    /// From the first call's start to the last call's end.
    pub fn span(&self) -> Duration {
        match (self.first_start, self.last_end) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// Mean time inside one call.
    pub fn mean_call(&self) -> Duration {
        let ended = self.calls.saturating_sub(self.unfinished);
        if ended == 0 {
            return Duration::ZERO;
        }
        self.busy / ended as u32
    }

    /// Mean number of calls open over the span (busy time / span).
    pub fn mean_open(&self) -> f64 {
        let span = self.span().as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        self.busy.as_secs_f64() / span
    }

    /// The runner's time per round between one call's end and the next call's start on
    /// the same slot: `(span - rounds x mean call) / rounds`, with `rounds` =
    /// ceil(calls / concurrency). The ideal is 0.
    pub fn gap_per_round(&self, concurrency: u64) -> Duration {
        let rounds = self.calls.div_ceil(concurrency.max(1));
        if rounds == 0 {
            return Duration::ZERO;
        }
        let inside = self.mean_call() * rounds as u32;
        self.span().saturating_sub(inside) / rounds as u32
    }
}

/// `b - a` in milliseconds, negative when `b` is earlier (clock of one machine).
pub fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: u64, start_ms: i64, end_ms: Option<i64>, prompt: &str) -> SimCall {
        let t0 = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        SimCall {
            id,
            region: "us-east".to_string(),
            model: "m".to_string(),
            prompt_sha256: prompt.to_string(),
            started_at: t0 + chrono::Duration::milliseconds(start_ms),
            ended_at: end_ms.map(|e| t0 + chrono::Duration::milliseconds(e)),
            outcome: "ok".to_string(),
        }
    }

    #[test]
    fn overlap_span_and_gaps() {
        // Two slots, two rounds of 200 ms, 10 ms between rounds; a probe is ignored.
        let calls = vec![
            call(1, 0, Some(200), "q"),
            call(2, 0, Some(200), "q"),
            call(3, 210, Some(410), "q"),
            call(4, 200, Some(400), "q"),
            call(5, 50, Some(60), "probe"),
        ];
        let v = CallView::of(&calls, "probe");
        assert_eq!((v.calls, v.max_overlap, v.unfinished), (4, 2, 0));
        assert_eq!(v.span(), Duration::from_millis(410));
        assert_eq!(v.mean_call(), Duration::from_millis(200));
        assert_eq!(v.gap_per_round(2), Duration::from_millis(5));
        assert!((v.mean_open() - 800.0 / 410.0).abs() < 1e-9);
    }

    #[test]
    fn an_end_and_a_start_at_the_same_time_do_not_overlap() {
        let calls = vec![call(1, 0, Some(200), "q"), call(2, 200, None, "q")];
        let v = CallView::of(&calls, "probe");
        assert_eq!((v.max_overlap, v.unfinished), (1, 1));
        assert_eq!(CallView::of(&[], "p"), CallView::default());
    }
}
