//! Job and execution statuses, answer classifications, the transitions allowed between
//! them, and the one rule that decides a finished job's status.
//!
//! The previous deployment computed job status before all executions had finished
//! (20 rows where 36 were expected). [`final_job_status`] refuses to answer until
//! every execution is terminal.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a job is in its life.
    JobStatus {
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Where one execution (one cell) is in its life.
    ExecutionStatus {
        Pending => "pending",
        Running => "running",
        Retrying => "retrying",
        Completed => "completed",
        Failed => "failed",
        Timeout => "timeout",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What kind of answer an execution produced.
    Classification {
        Substantive => "substantive",
        ContentRefusal => "content_refusal",
        EmptyResponse => "empty_response",
        TechnicalFailure => "technical_failure",
    }
);

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Allowed moves. A finished (not cancelled) job may go back to `queued` when its
    /// failed executions are retried (`POST …/retry-failed`).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Queued, Running | Failed | Cancelled)
                | (Running, Completed | Failed | Cancelled)
                | (Completed | Failed, Queued)
        )
    }
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed
                | ExecutionStatus::Failed
                | ExecutionStatus::Timeout
                | ExecutionStatus::Cancelled
        )
    }

    /// Allowed moves. `running`/`retrying` → `pending` is the shutdown hand-back (work
    /// returned, not failed); `failed`/`timeout` → `pending` is retry-failed.
    pub fn can_become(self, next: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, next),
            (Pending, Running | Cancelled | Timeout)
                | (
                    Running,
                    Retrying | Completed | Failed | Timeout | Cancelled | Pending
                )
                | (Retrying, Running | Failed | Timeout | Cancelled | Pending)
                | (Failed | Timeout, Pending)
        )
    }
}

impl Classification {
    /// Which classifications an execution in `status` may carry: answers for
    /// `completed`, `technical_failure` for failed/timeout, none otherwise.
    pub fn allowed_for(self, status: ExecutionStatus) -> bool {
        match status {
            ExecutionStatus::Completed => self != Classification::TechnicalFailure,
            ExecutionStatus::Failed | ExecutionStatus::Timeout => {
                self == Classification::TechnicalFailure
            }
            _ => false,
        }
    }
}

/// How many executions of a job are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionCounts {
    pub pending: u64,
    pub running: u64,
    pub retrying: u64,
    pub completed: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cancelled: u64,
}

impl ExecutionCounts {
    pub fn add(&mut self, status: ExecutionStatus, n: u64) {
        let slot = match status {
            ExecutionStatus::Pending => &mut self.pending,
            ExecutionStatus::Running => &mut self.running,
            ExecutionStatus::Retrying => &mut self.retrying,
            ExecutionStatus::Completed => &mut self.completed,
            ExecutionStatus::Failed => &mut self.failed,
            ExecutionStatus::Timeout => &mut self.timeout,
            ExecutionStatus::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.retrying + self.terminal()
    }
    pub fn terminal(&self) -> u64 {
        self.completed + self.failed + self.timeout + self.cancelled
    }
    pub fn unfinished(&self) -> u64 {
        self.pending + self.running + self.retrying
    }
    pub fn all_terminal(&self) -> bool {
        self.total() > 0 && self.unfinished() == 0
    }
    /// True when even if every unfinished execution completed, the job would stay
    /// below `min_success_rate`: the moment to stop spending money.
    pub fn success_unreachable(&self, min_success_rate: f64) -> bool {
        let best = self.completed + self.unfinished();
        !meets(best, self.total(), min_success_rate)
    }
}

/// Why a job ended `failed`.
pub mod failure_reason {
    pub const MIN_SUCCESS_RATE_UNREACHABLE: &str = "min_success_rate_unreachable";
    pub const BELOW_MIN_SUCCESS_RATE: &str = "below_min_success_rate";
    pub const JOB_TIMEOUT: &str = "job_timeout";
    /// Fewer regions than `min_regions` have a completed execution.
    pub const BELOW_MIN_REGIONS: &str = "below_min_regions";
}

/// A job's region quorum: it completes only if at least `min` of its regions have a
/// completed execution (`constraints.min_regions`; 0 = no quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionQuorum {
    pub min: u32,
    /// Regions with at least one completed execution.
    pub answered: u32,
}

/// The final verdict of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalStatus {
    pub status: JobStatus,
    /// A machine code from [`failure_reason`] when `failed`.
    pub reason: Option<&'static str>,
    pub message: String,
}

/// Decides the job's final status, or `None` while any execution is unfinished.
/// `cancelled_by_user` wins; otherwise `completed` iff completed / total ≥
/// `min_success_rate`; an early stop keeps its own reason.
pub fn final_job_status(
    counts: &ExecutionCounts,
    min_success_rate: f64,
    cancelled_by_user: bool,
    early_stop_reason: Option<&'static str>,
) -> Option<FinalStatus> {
    final_job_status_with_quorum(
        counts,
        min_success_rate,
        RegionQuorum::default(),
        cancelled_by_user,
        early_stop_reason,
    )
}

/// [`final_job_status`] with a region quorum: a job that meets its success rate but
/// has answers from fewer than `quorum.min` regions fails with `below_min_regions`.
pub fn final_job_status_with_quorum(
    counts: &ExecutionCounts,
    min_success_rate: f64,
    quorum: RegionQuorum,
    cancelled_by_user: bool,
    early_stop_reason: Option<&'static str>,
) -> Option<FinalStatus> {
    if !counts.all_terminal() {
        return None;
    }
    let summary = format!(
        "{} of {} executions completed (success rate {:.3}, required {})",
        counts.completed,
        counts.total(),
        counts.completed as f64 / counts.total() as f64,
        min_success_rate
    );
    Some(if cancelled_by_user {
        FinalStatus {
            status: JobStatus::Cancelled,
            reason: None,
            message: format!("cancelled by a user; {summary}"),
        }
    } else if meets(counts.completed, counts.total(), min_success_rate)
        && quorum.answered < quorum.min
    {
        FinalStatus {
            status: JobStatus::Failed,
            reason: Some(failure_reason::BELOW_MIN_REGIONS),
            message: format!(
                "{summary}; but only {} region(s) answered, {} required (min_regions)",
                quorum.answered, quorum.min
            ),
        }
    } else if meets(counts.completed, counts.total(), min_success_rate) {
        FinalStatus {
            status: JobStatus::Completed,
            reason: None,
            message: summary,
        }
    } else {
        FinalStatus {
            status: JobStatus::Failed,
            reason: Some(early_stop_reason.unwrap_or(failure_reason::BELOW_MIN_SUCCESS_RATE)),
            message: summary,
        }
    })
}

/// `part / total ≥ rate`, with a tolerance for the rate's decimal spelling (0.5 of 4).
fn meets(part: u64, total: u64, rate: f64) -> bool {
    if total == 0 {
        return false;
    }
    part as f64 / total as f64 + 1e-9 >= rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_quorum_can_fail_a_job_that_met_its_rate() {
        let c = counts(9, 0, 0);
        let short = RegionQuorum {
            min: 2,
            answered: 1,
        };
        let f = final_job_status_with_quorum(&c, 0.5, short, false, None).unwrap();
        assert_eq!(f.status, JobStatus::Failed);
        assert_eq!(f.reason, Some(failure_reason::BELOW_MIN_REGIONS));
        assert!(
            f.message.contains("only 1 region(s) answered, 2 required"),
            "{}",
            f.message
        );
        let met = RegionQuorum {
            min: 2,
            answered: 2,
        };
        let f = final_job_status_with_quorum(&c, 0.5, met, false, None).unwrap();
        assert_eq!(f.status, JobStatus::Completed);
        // A rate that is not met keeps its own reason.
        let f = final_job_status_with_quorum(&counts(1, 8, 0), 0.5, short, false, None).unwrap();
        assert_eq!(f.reason, Some(failure_reason::BELOW_MIN_SUCCESS_RATE));
    }

    fn counts(completed: u64, failed: u64, pending: u64) -> ExecutionCounts {
        ExecutionCounts {
            completed,
            failed,
            pending,
            ..Default::default()
        }
    }

    #[test]
    fn no_verdict_before_every_execution_is_terminal() {
        assert_eq!(final_job_status(&counts(35, 0, 1), 0.67, false, None), None);
        assert_eq!(
            final_job_status(&ExecutionCounts::default(), 0.67, false, None),
            None
        );
    }

    #[test]
    fn verdict_follows_min_success_rate() {
        let done = final_job_status(&counts(27, 0, 0), 0.67, false, None).unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        // 2 of 3 is 0.667, below 0.67: the spec's threshold is taken literally.
        let f = final_job_status(&counts(2, 1, 0), 0.67, false, None).unwrap();
        assert_eq!(
            (f.status, f.reason),
            (JobStatus::Failed, Some("below_min_success_rate"))
        );
        assert_eq!(
            final_job_status(&counts(2, 2, 0), 0.5, false, None)
                .unwrap()
                .status,
            JobStatus::Completed
        );
        assert_eq!(
            final_job_status(&counts(0, 3, 0), 0.0, false, None)
                .unwrap()
                .status,
            JobStatus::Completed
        );
        let c = final_job_status(&counts(3, 0, 0), 0.67, true, None).unwrap();
        assert_eq!(c.status, JobStatus::Cancelled);
    }

    #[test]
    fn unreachable_is_detected_as_soon_as_it_is_certain() {
        assert!(!counts(0, 2, 7).success_unreachable(0.67));
        // 6 of 9 at best is 0.667 < 0.67: certain already.
        assert!(counts(0, 3, 6).success_unreachable(0.67));
        assert!(!counts(0, 9, 0).success_unreachable(0.0));
    }

    #[test]
    fn transitions() {
        use ExecutionStatus as E;
        assert!(E::Pending.can_become(E::Running));
        assert!(E::Running.can_become(E::Pending), "shutdown hand-back");
        assert!(!E::Completed.can_become(E::Running));
        assert!(!E::Cancelled.can_become(E::Pending));
        assert!(E::Failed.can_become(E::Pending), "retry-failed");
        assert!(JobStatus::Queued.can_become(JobStatus::Running));
        assert!(!JobStatus::Cancelled.can_become(JobStatus::Queued));
        assert!(Classification::EmptyResponse.allowed_for(E::Completed));
        assert!(!Classification::TechnicalFailure.allowed_for(E::Completed));
        assert!(Classification::TechnicalFailure.allowed_for(E::Timeout));
        assert!(!Classification::Substantive.allowed_for(E::Running));
        for s in E::ALL {
            assert_eq!(E::parse(s.as_str()), Some(*s));
        }
    }
}
