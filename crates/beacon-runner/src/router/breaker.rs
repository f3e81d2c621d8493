//! A circuit breaker for the router client: after repeated router-level failures it
//! opens for a while (doubling up to a cap), then lets one trial call through. While
//! it is open, executions wait (`Breaker::acquire`) instead of burning attempts on a
//! router that is down; the first of them to ask once the open period is over becomes
//! the trial, so the breaker recovers by itself when the router is back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, opened: u32 },
    HalfOpen { trial_in_flight: bool, opened: u32 },
}

/// The breaker's state as reported (diagnostics, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

pub struct Breaker {
    cfg: BreakerConfig,
    state: Mutex<State>,
}

/// Permission to call; reports the outcome when dropped without one (a cancelled trial
/// frees the half-open slot).
pub struct Permit<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.on_success();
    }
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.on_failure();
    }
    /// The call ended with an answer from the router that says nothing about the
    /// router's own health (for example a provider failure it reported).
    pub fn neutral(mut self) {
        self.done = true;
        self.breaker.on_success();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.release_trial();
        }
    }
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A permit to call now, or how long to wait before asking again.
    pub fn allow(&self) -> Result<Permit<'_>, Duration> {
        let now = Instant::now();
        self.with(|s| match *s {
            State::Closed { .. } => Ok(()),
            State::Open { until, opened } => {
                if now >= until {
                    *s = State::HalfOpen {
                        trial_in_flight: true,
                        opened,
                    };
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            State::HalfOpen {
                trial_in_flight: false,
                opened,
            } => {
                *s = State::HalfOpen {
                    trial_in_flight: true,
                    opened,
                };
                Ok(())
            }
            State::HalfOpen {
                trial_in_flight: true,
                ..
            } => Err(Duration::from_millis(100)),
        })
        .map(|()| Permit {
            breaker: self,
            done: false,
        })
    }

    fn on_success(&self) {
        self.with(|s| *s = State::Closed { failures: 0 });
    }

    fn on_failure(&self) {
        let now = Instant::now();
        let cfg = &self.cfg;
        self.with(|s| {
            let open = |opened: u32| {
                let factor = 1u32 << opened.min(16);
                let length = cfg.open_for.saturating_mul(factor).min(cfg.max_open_for);
                State::Open {
                    until: now + length,
                    opened: opened + 1,
                }
            };
            *s = match *s {
                State::Closed { failures } if failures + 1 >= cfg.failure_threshold => open(0),
                State::Closed { failures } => State::Closed {
                    failures: failures + 1,
                },
                State::HalfOpen { opened, .. } => open(opened),
                State::Open { until, opened } => State::Open { until, opened },
            };
        });
    }

    fn release_trial(&self) {
        self.with(|s| {
            if let State::HalfOpen { opened, .. } = *s {
                *s = State::HalfOpen {
                    trial_in_flight: false,
                    opened,
                };
            }
        });
    }

    /// Waits for permission to call: at once while closed; while open, until the open
    /// period ends and this caller becomes the trial (or the trial of another closed
    /// the breaker). Cancel by dropping the future.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            match self.allow() {
                Ok(p) => return p,
                // Short naps: a trial that succeeds closes the breaker for everyone,
                // and the waiters should notice within a fraction of a second.
                Err(wait) => tokio::time::sleep(wait.min(Duration::from_millis(100))).await,
            }
        }
    }

    /// The state as it is now: an open period that has run out reads `half_open` (the
    /// next caller is the trial), so a health check never reports a breaker that
    /// nothing holds open any more.
    pub fn state(&self) -> BreakerState {
        let now = Instant::now();
        self.with(|s| match *s {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_millis(50),
            max_open_for: Duration::from_millis(120),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_one_trial() {
        let b = Breaker::new(cfg());
        b.allow().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.allow().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.allow().err().unwrap();
        assert!(wait <= Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(51)).await;
        let trial = b.allow().unwrap();
        assert!(b.allow().is_err(), "one trial at a time");
        trial.failure();
        // Re-opened for twice as long.
        assert!(b.allow().err().unwrap() > Duration::from_millis(60));
        tokio::time::advance(Duration::from_millis(121)).await;
        let trial = b.allow().unwrap();
        drop(trial);
        let trial = b.allow().unwrap();
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_recover_without_anyone_calling_allow() {
        // The stall of a router restart: everybody waits on an open breaker and nobody
        // would ever ask for the trial. `acquire` makes the first waiter the trial.
        let b = Breaker::new(cfg());
        b.allow().unwrap().failure();
        b.allow().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = tokio::time::timeout(Duration::from_secs(1), b.acquire())
            .await
            .expect("the open period is over");
        // A second waiter waits for the trial's verdict, then goes through.
        let (second, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(1), b.acquire()),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                trial.success();
            }
        );
        second.expect("closed after the trial").success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
