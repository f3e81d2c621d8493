//! In-process events for `GET /jobs/{id}/events` (Server-Sent Events): every job and
//! execution change the scheduler or the API makes is published here.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// `job_update` or `execution_update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    JobUpdate,
    ExecutionUpdate,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::JobUpdate => "job_update",
            EventKind::ExecutionUpdate => "execution_update",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub job_id: String,
    pub kind: EventKind,
    pub data: Value,
}

/// A broadcast hub; slow subscribers lose old events (they re-read the job).
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    pub fn publish(&self, job_id: &str, kind: EventKind, data: Value) {
        // No subscriber is fine: nobody is watching.
        let _ = self.tx.send(Event {
            job_id: job_id.to_string(),
            kind,
            data,
        });
    }

    /// Whether anyone listens (publishers skip building payloads when nobody does).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
