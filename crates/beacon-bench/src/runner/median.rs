//! Repeated runs (`--runs N`): each orchestration (backend, C) and write path (backend)
//! is measured N times on fresh stacks, and judged on the median run, so one run
//! disturbed by the machine neither passes nor fails the target alone. Every run must
//! still complete every execution.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::db::Backend;
use super::scenarios::{Orchestration, TARGET_RATIO, Throughput, target_rate};

/// The median of one group of runs.
#[derive(Debug, Clone)]
pub struct Median {
    /// `orchestration` or `write path`.
    pub what: &'static str,
    pub backend: Backend,
    pub concurrency: u32,
    /// The judged figure of every run, in run order (ratio, or executions/s).
    pub runs: Vec<f64>,
    pub median: f64,
    pub target: f64,
    /// Lower is better (a ratio) or higher is (a rate).
    pub at_most: bool,
    pub all_completed: bool,
}

impl Median {
    pub fn pass(&self) -> bool {
        self.all_completed
            && if self.at_most {
                self.median <= self.target
            } else {
                self.median >= self.target
            }
    }

    pub fn json(&self) -> Value {
        json!({
            "measurement": self.what,
            "backend": self.backend.as_str(),
            "concurrency": self.concurrency,
            "runs": self.runs,
            "median": self.median,
            "target": self.target,
            "pass": self.pass(),
        })
    }
}

/// The median of `v` (the mean of the middle two for an even count); NaN counts as
/// the worst value.
fn median(mut v: Vec<f64>, at_most: bool) -> f64 {
    let worst = if at_most { f64::INFINITY } else { 0.0 };
    for x in &mut v {
        if !x.is_finite() {
            *x = worst;
        }
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => worst,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One median per (backend, C) of orchestration and per backend of the write path, in
/// the order first measured.
pub fn medians(orchestration: &[Orchestration], throughput: &[Throughput]) -> Vec<Median> {
    let mut out: Vec<Median> = Vec::new();
    let mut add = |what, backend, concurrency, figure: f64, done: bool, target, at_most| match out
        .iter_mut()
        .find(|m| m.what == what && m.backend == backend && m.concurrency == concurrency)
    {
        Some(m) => {
            m.runs.push(figure);
            m.all_completed &= done;
        }
        None => out.push(Median {
            what,
            backend,
            concurrency,
            runs: vec![figure],
            median: 0.0,
            target,
            at_most,
            all_completed: done,
        }),
    };
    for o in orchestration {
        let ratio = o.ratio().unwrap_or(f64::INFINITY);
        let done = o.run.all_completed();
        add(
            "orchestration",
            o.backend,
            o.concurrency,
            ratio,
            done,
            TARGET_RATIO,
            true,
        );
    }
    for t in throughput {
        let rate = t.run.runner_rate();
        let (b, c, done) = (t.backend, t.concurrency, t.run.all_completed());
        add("write path", b, c, rate, done, target_rate(b), false);
    }
    for m in &mut out {
        m.median = median(m.runs.clone(), m.at_most);
    }
    out
}

/// The medians as a table (only when some group has more than one run).
pub fn table(out: &mut String, medians: &[Median]) {
    if medians.iter().all(|m| m.runs.len() < 2) {
        return;
    }
    let _ = writeln!(out, "\nmedian of the runs (judged):");
    for m in medians {
        let runs: Vec<String> = m
            .runs
            .iter()
            .map(|r| {
                if m.at_most {
                    format!("{r:.3}")
                } else {
                    format!("{r:.0}")
                }
            })
            .collect();
        let (median, target) = if m.at_most {
            (format!("{:.3}", m.median), format!("<= {:.2}", m.target))
        } else {
            (format!("{:.0}", m.median), format!(">= {:.0}", m.target))
        };
        let _ = writeln!(
            out,
            "{:<14}{:<9} C = {:<4} runs {:<28} median {:>7} (target {}) {}",
            m.what,
            m.backend.as_str(),
            m.concurrency,
            runs.join(", "),
            median,
            target,
            if m.pass() { "PASS" } else { "FAIL" },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_run_and_a_missing_figure_is_the_worst() {
        assert_eq!(median(vec![1.2, 1.0, 1.1], true), 1.1);
        assert_eq!(median(vec![900.0, 2100.0, 2050.0, 1990.0], false), 2020.0);
        assert_eq!(median(vec![f64::NAN, 1.0, 1.02], true), 1.02);
        assert_eq!(
            median(vec![f64::INFINITY, 1.0, f64::NAN], true),
            f64::INFINITY
        );
    }
}
