//! Exit codes of the `beacon` command (docs/cli.md lists them).

use crate::client::ClientError;

/// Success: the job completed, every receipt verified, every doctor check passed.
pub const OK: u8 = 0;
/// The thing checked is bad: a job below its success threshold, a receipt that does
/// not verify, a failing doctor check.
pub const FAILED: u8 = 1;
/// Wrong usage (clap's own code).
pub const USAGE: u8 = 2;
/// The job was cancelled.
pub const CANCELLED: u8 = 3;
/// A service could not be reached or answered a server error.
pub const UNREACHABLE: u8 = 4;
/// The runner refused the request (bad spec, unknown job: a 4xx).
pub const REFUSED: u8 = 5;

/// The exit code for a finished job's status.
pub fn for_job_status(status: &str) -> u8 {
    match status {
        "completed" => OK,
        "cancelled" => CANCELLED,
        _ => FAILED,
    }
}

pub fn for_client_error(e: &ClientError) -> u8 {
    match e.status() {
        Some(s) if (400..500).contains(&s) => REFUSED,
        _ => UNREACHABLE,
    }
}
