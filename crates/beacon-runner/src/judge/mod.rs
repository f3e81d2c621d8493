//! The optional judge (docs/analysis.md "Judge"): a configured model, asked through the
//! router like any job call, labels every completed answer of finished jobs with a
//! fixed rubric, once per rubric version. The rule labels (crate::classify) stay the
//! offline default; the report sets the two side by side (crate::analysis::judge).
//! `rubric.rs` holds the prompt and the reading of replies, `run.rs` the background
//! task that finds unlabelled answers and buys their labels.

mod rubric;
mod run;

pub use rubric::{MAX_ANSWER_CHARS, RUBRIC_VERSION, Verdict, parse, prompt};
pub use run::run;
