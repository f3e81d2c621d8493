//! The call log and counters behind `GET /__sim/stats`: one record per inference request,
//! its fixed outcome vocabulary, and the bounded in-memory log that holds them.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::FaultKind;

/// How a call ended (`running` while it has not). The vocabulary is fixed; see
/// `docs/simulator.md` for what each value means and which HTTP answer it comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Ok,
    Empty,
    ReportedFailure,
    #[serde(rename = "http_500")]
    Http500,
    Malformed,
    Dropped,
    ValidationError,
    UnknownModel,
    InferenceBroken,
    CancelledByClient,
    CancelledByShutdown,
}

/// Which counter an ended call adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tally {
    Completed,
    Failed,
    CancelledByClient,
    CancelledByShutdown,
}

impl Outcome {
    fn tally(self) -> Option<Tally> {
        match self {
            Outcome::Running => None,
            Outcome::Ok | Outcome::Empty => Some(Tally::Completed),
            Outcome::CancelledByClient => Some(Tally::CancelledByClient),
            Outcome::CancelledByShutdown => Some(Tally::CancelledByShutdown),
            _ => Some(Tally::Failed),
        }
    }
}

/// Which contract a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Modal,
    Openai,
}

/// Where a running call is: waiting for the container (cold start or a concurrency slot)
/// or being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    Serving,
    Ended,
}

/// One call as `GET /__sim/stats` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: u64,
    pub route: Route,
    pub model: String,
    /// Hex SHA-256 of the prompt text.
    pub prompt_sha256: String,
    /// How many times this (model, prompt) was asked before on this instance.
    pub occurrence: u32,
    /// The fault the seeded draw chose (`none` for calls refused before drawing).
    pub fault: FaultKind,
    pub cold_start: bool,
    pub phase: Phase,
    /// How many 303 redirects were answered for this call.
    pub redirects: u32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    /// Status of the answer written (`null` while running, for drops and cancellations).
    pub http_status: Option<u16>,
    /// Hex SHA-256 of the exact answer text served (`ok` and `empty` only; for a padded
    /// answer, of the whole padded text, known once its filler has been written).
    #[serde(default)]
    pub response_sha256: Option<String>,
    /// Length of that answer text in bytes (padding included).
    #[serde(default)]
    pub response_bytes: Option<u64>,
    /// The client closed the connection before a streamed (padded) answer was written
    /// to the end.
    #[serde(default)]
    pub hung_up_mid_body: bool,
    /// The W3C `traceparent` header the call arrived with (the router forwards its
    /// provider-attempt span; docs/operations.md "Traces").
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// The answer text a successful call served, as the log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServedText {
    /// `None` for a padded answer until its filler has been streamed.
    pub sha256: Option<[u8; 32]>,
    pub bytes: u64,
}

/// A snapshot of the counters and the call log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub region: String,
    pub label: String,
    /// Every inference request recorded (= completed + failed + cancelled_by_client +
    /// cancelled_by_shutdown + in_flight + queued).
    pub started: u64,
    /// Ended with an answer (`ok`, `empty`).
    pub completed: u64,
    /// Ended with any failure outcome, including the client's own validation errors.
    pub failed: u64,
    pub cancelled_by_client: u64,
    pub cancelled_by_shutdown: u64,
    /// Calls being served (holding a concurrency slot).
    pub in_flight: u64,
    /// Calls waiting for a slot or for a cold start.
    pub queued: u64,
    /// Records dropped from the front of the bounded log.
    pub evicted: u64,
    pub calls: Vec<CallRecord>,
}

impl SimStats {
    /// The record of one call, if still in the log.
    pub fn call(&self, id: u64) -> Option<&CallRecord> {
        self.calls.iter().find(|c| c.id == id)
    }

    /// Outcomes in call order.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.calls.iter().map(|c| c.outcome).collect()
    }
}

/// Compact in-memory form of a record (the model name is shared, the hash is raw bytes).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub route: Route,
    pub model: Arc<str>,
    pub prompt_sha256: [u8; 32],
    pub occurrence: u32,
    pub fault: FaultKind,
    pub cold_start: bool,
    pub phase: Phase,
    pub redirects: u32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub served: Option<ServedText>,
    pub hung_up_mid_body: bool,
    pub traceparent: Option<Box<str>>,
}

/// The bounded log plus counters. Ids are sequential from 1, so a record is found by
/// offset from the oldest id still held.
#[derive(Debug)]
pub(crate) struct CallLog {
    entries: VecDeque<Entry>,
    first_id: u64,
    capacity: usize,
    evicted: u64,
    started: u64,
    completed: u64,
    failed: u64,
    cancelled_by_client: u64,
    cancelled_by_shutdown: u64,
    in_flight: u64,
    queued: u64,
}

impl CallLog {
    pub fn new(capacity: usize) -> CallLog {
        CallLog {
            entries: VecDeque::new(),
            first_id: 1,
            capacity: capacity.max(1),
            evicted: 0,
            started: 0,
            completed: 0,
            failed: 0,
            cancelled_by_client: 0,
            cancelled_by_shutdown: 0,
            in_flight: 0,
            queued: 0,
        }
    }

    /// Appends a record and returns its id. Counters follow its phase and outcome.
    pub fn push(&mut self, entry: Entry) -> u64 {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.first_id += 1;
            self.evicted += 1;
        }
        self.started += 1;
        match entry.phase {
            Phase::Queued => self.queued += 1,
            Phase::Serving => self.in_flight += 1,
            Phase::Ended => self.count_end(entry.outcome),
        }
        self.entries.push_back(entry);
        self.first_id + self.entries.len() as u64 - 1
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        let offset = id.checked_sub(self.first_id)?;
        self.entries.get_mut(usize::try_from(offset).ok()?)
    }

    fn count_end(&mut self, outcome: Outcome) {
        match outcome.tally() {
            Some(Tally::Completed) => self.completed += 1,
            Some(Tally::Failed) => self.failed += 1,
            Some(Tally::CancelledByClient) => self.cancelled_by_client += 1,
            Some(Tally::CancelledByShutdown) => self.cancelled_by_shutdown += 1,
            None => {}
        }
    }

    fn leave_phase(&mut self, phase: Phase) {
        match phase {
            Phase::Queued => self.queued = self.queued.saturating_sub(1),
            Phase::Serving => self.in_flight = self.in_flight.saturating_sub(1),
            Phase::Ended => {}
        }
    }

    /// Queued → serving. The caller holds the authoritative phase (the record may have
    /// been evicted), so counters move even without a record.
    pub fn start_serving(&mut self, id: u64) {
        self.leave_phase(Phase::Queued);
        self.in_flight += 1;
        if let Some(e) = self.get_mut(id) {
            e.phase = Phase::Serving;
        }
    }

    /// Running → ended with `outcome` (and the answer text it served, if any).
    pub fn end(
        &mut self,
        id: u64,
        from: Phase,
        outcome: Outcome,
        http_status: Option<u16>,
        served: Option<ServedText>,
    ) {
        self.leave_phase(from);
        self.count_end(outcome);
        if let Some(e) = self.get_mut(id) {
            e.phase = Phase::Ended;
            e.outcome = outcome;
            e.http_status = http_status;
            e.served = served;
            e.ended_at = Some(Utc::now());
        }
    }

    /// A padded answer's filler has been streamed: its text's hash is now known.
    pub fn note_streamed_text(&mut self, id: u64, sha256: [u8; 32]) {
        if let Some(served) = self.get_mut(id).and_then(|e| e.served.as_mut()) {
            served.sha256 = Some(sha256);
        }
    }

    /// A client closed the connection before a streamed answer's last byte.
    pub fn note_hung_up(&mut self, id: u64) {
        if let Some(e) = self.get_mut(id) {
            e.hung_up_mid_body = true;
        }
    }

    /// The highest id handed out so far (ids are sequential from 1).
    pub fn last_id(&self) -> u64 {
        self.started
    }

    pub fn note_redirect(&mut self, id: u64) {
        if let Some(e) = self.get_mut(id) {
            e.redirects += 1;
        }
    }

    /// Counters and the records with `id > since_id` (at most `limit` of them).
    pub fn snapshot(&self, region: &str, label: &str, since_id: u64, limit: usize) -> SimStats {
        let skip = since_id.saturating_sub(self.first_id - 1);
        let calls = self
            .entries
            .iter()
            .enumerate()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(limit)
            .map(|(i, e)| CallRecord {
                id: self.first_id + i as u64,
                route: e.route,
                model: e.model.to_string(),
                prompt_sha256: hex::encode(e.prompt_sha256),
                occurrence: e.occurrence,
                fault: e.fault,
                cold_start: e.cold_start,
                phase: e.phase,
                redirects: e.redirects,
                started_at: e.started_at,
                ended_at: e.ended_at,
                outcome: e.outcome,
                http_status: e.http_status,
                response_sha256: e.served.and_then(|s| s.sha256).map(hex::encode),
                response_bytes: e.served.map(|s| s.bytes),
                hung_up_mid_body: e.hung_up_mid_body,
                traceparent: e.traceparent.as_deref().map(str::to_string),
            })
            .collect();
        SimStats {
            region: region.to_string(),
            label: label.to_string(),
            started: self.started,
            completed: self.completed,
            failed: self.failed,
            cancelled_by_client: self.cancelled_by_client,
            cancelled_by_shutdown: self.cancelled_by_shutdown,
            in_flight: self.in_flight,
            queued: self.queued,
            evicted: self.evicted,
            calls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phase: Phase, outcome: Outcome) -> Entry {
        Entry {
            route: Route::Modal,
            model: Arc::from("m"),
            prompt_sha256: [0; 32],
            occurrence: 0,
            fault: FaultKind::None,
            cold_start: false,
            phase,
            redirects: 0,
            started_at: Utc::now(),
            ended_at: None,
            outcome,
            http_status: None,
            served: None,
            hung_up_mid_body: false,
            traceparent: None,
        }
    }

    #[test]
    fn log_is_bounded_and_counters_survive_eviction() {
        let mut log = CallLog::new(2);
        let a = log.push(entry(Phase::Queued, Outcome::Running));
        let b = log.push(entry(Phase::Ended, Outcome::Ok));
        let c = log.push(entry(Phase::Ended, Outcome::ValidationError));
        assert_eq!((a, b, c), (1, 2, 3));
        log.start_serving(a);
        log.end(a, Phase::Serving, Outcome::CancelledByClient, None, None);
        let s = log.snapshot("r", "r", 0, usize::MAX);
        assert_eq!(s.calls.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(
            (s.started, s.completed, s.failed, s.cancelled_by_client),
            (3, 1, 1, 1)
        );
        assert_eq!((s.in_flight, s.queued, s.evicted), (0, 0, 1));
        let later = log.snapshot("r", "r", 2, usize::MAX);
        assert_eq!(later.calls.len(), 1);
        assert_eq!(later.calls[0].id, 3);
    }

    #[test]
    fn outcome_names_are_the_documented_vocabulary() {
        let names: Vec<String> = [Outcome::Http500, Outcome::CancelledByClient, Outcome::Ok]
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        assert_eq!(names, ["\"http_500\"", "\"cancelled_by_client\"", "\"ok\""]);
    }
}
