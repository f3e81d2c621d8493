//! Cold starts: the first call after an idle period (or ever) waits for the container
//! to boot, and calls arriving during a boot wait for the same boot.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::faults::Faults;

#[derive(Debug, Default)]
pub(crate) struct ColdStart {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Calls admitted and not yet ended: a busy container never idles.
    active: usize,
    last_activity: Option<Instant>,
    booting_until: Option<Instant>,
}

impl ColdStart {
    /// Registers an arriving call; returns until when it must wait for a boot, if at all.
    pub fn enter(&self, faults: &Faults, now: Instant) -> Option<Instant> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let idle_after = Duration::from_millis(faults.idle_after_ms);
        let until = if faults.cold_start_ms == 0 {
            None
        } else if let Some(boot) = s.booting_until.filter(|b| *b > now) {
            // Joins a boot already under way.
            Some(boot)
        } else if s.active == 0
            && s.last_activity
                .is_none_or(|t| now.duration_since(t) >= idle_after)
        {
            let boot = now + Duration::from_millis(faults.cold_start_ms);
            s.booting_until = Some(boot);
            Some(boot)
        } else {
            None
        };
        s.active += 1;
        s.last_activity = Some(now);
        until
    }

    /// Registers the end of a call (the idle clock starts from the last ending).
    pub fn leave(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.active = s.active.saturating_sub(1);
        s.last_activity = Some(Instant::now());
    }
}
