//! The self-contained HTML report page (analysis.md "Views"): one HTML5 document with
//! inline CSS, no script and no external asset, so it works under the route's
//! `default-src 'none'` policy and when saved to a file and opened later.
//!
//! Every string taken from the report goes through [`escape`], in element content and
//! in attribute values alike (it also shows bidi controls as `[U+202E]` markers); CSS classes that depend on report values (status,
//! classification, risk level) are picked from fixed lists, never copied from the report.

mod group;
mod judge;
mod sections;
mod style;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Answer, Group, Report};

/// Groups shown with their answers per page by default, and at most (`?per_page=`).
pub const GROUPS_PER_PAGE: usize = 20;
pub const MAX_GROUPS_PER_PAGE: usize = 100;
/// Answers shown per group at most; the rest are counted and left to the export.
pub const ANSWERS_PER_GROUP: usize = 30;

/// Which part of the answers section a page shows (`?page=&per_page=`): the summary
/// sections always cover the whole job; the groups with their answers come
/// `per_page` at a time, so the page of a 100,000-execution job stays small.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    /// Group index → the answers to show, for groups whose answers the report does
    /// not list itself (read from the store by the handler).
    pub answers: BTreeMap<usize, Vec<Answer>>,
}

impl Paging {
    pub fn new(page: usize, per_page: usize) -> Paging {
        Paging {
            page: page.max(1),
            per_page: per_page.clamp(1, MAX_GROUPS_PER_PAGE),
            answers: BTreeMap::new(),
        }
    }

    /// Pages of `groups` groups (one, even when there is none).
    pub fn pages(&self, groups: usize) -> usize {
        groups.div_ceil(self.per_page).max(1)
    }

    /// The indexes of the groups on this page.
    pub fn range(&self, groups: usize) -> Range<usize> {
        let start = (self.page - 1).saturating_mul(self.per_page).min(groups);
        start..(start + self.per_page).min(groups)
    }

    /// The page a group is on.
    fn page_of(&self, index: usize) -> usize {
        index / self.per_page + 1
    }

    /// The link to a group's section: on this page an anchor, else that page.
    fn link(&self, index: usize, g: &Group) -> String {
        let anchor = escape(&group_anchor(&g.question_id, &g.model_id));
        let page = self.page_of(index);
        if page == self.page {
            format!("#{anchor}")
        } else {
            format!("?page={page}&amp;per_page={}#{anchor}", self.per_page)
        }
    }
}

/// The policy the page is written for; repeated in a `<meta>` element so that a saved
/// copy of the page is held to it too.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/// Renders the report page's first page.
pub fn render(report: &Report) -> String {
    render_page(report, &Paging::new(1, GROUPS_PER_PAGE))
}

/// Renders one page of the report page.
pub fn render_page(report: &Report, paging: &Paging) -> String {
    let shown = paging.range(report.groups.len()).len();
    let mut out = String::with_capacity(24 * 1024 + report.groups.len() * 512 + shown * 6 * 1024);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n",
        escape(CSP)
    ));
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str(&format!(
        "<title>Beacon report {}</title>\n<style>{}</style>\n</head>\n<body>\n",
        escape(&report.job_id),
        style::CSS
    ));
    sections::header(&mut out, report);
    out.push_str("<main class=\"wrap\">\n");
    if report.simulated {
        sections::simulator_banner(&mut out, report);
    }
    sections::analysis(&mut out, report);
    sections::heatmap(&mut out, report, paging);
    sections::regions(&mut out, report);
    judge::section(&mut out, report);
    group::groups(&mut out, report, paging);
    out.push_str("</main>\n<footer class=\"wrap foot\">Beacon cross-region report · every number's formula is in docs/analysis.md · the JSON form of this page is <code>report</code> next to <code>report.html</code></footer>\n</body>\n</html>\n");
    out
}

/// Escapes text for HTML element content and attribute values, and shows invisible
/// direction controls as a visible `[U+XXXX]` (see [`neutralised`]).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if neutralised(c) => out.push_str(&format!("[U+{:04X}]", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Characters that change how the text around them is displayed without being seen
/// themselves, so an answer could make the page show something other than what was
/// stored (a right-to-left override reverses the rest of a line): the Unicode
/// `Bidi_Control` characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069),
/// the deprecated format controls U+206A–U+206F (symmetric swapping, digit shapes)
/// and U+FEFF inside text. Zero-width joiners and non-joiners stay: Persian, Indic
/// scripts and emoji sequences need them and they cannot reorder text.
fn neutralised(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// A score with two decimals (the page's and `data-divergence`'s format).
fn num(x: f64) -> String {
    format!("{x:.2}")
}

/// A signed score with two decimals.
fn signed(x: f64) -> String {
    format!("{x:+.2}")
}

/// A rate in [0, 1] as a whole percentage.
fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// `x` clamped to [0, 1]; NaN counts as 0.
fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// Inline background for a divergence: green at 0 through yellow to red at 1, grey
/// when there is none.
fn heat(d: Option<f64>) -> String {
    match d {
        Some(d) => format!(
            "background:hsl({:.0},{:.0}%,{:.0}%)",
            120.0 * (1.0 - unit(d)),
            62.0 + 18.0 * unit(d),
            // Lighter at 0, deeper towards 1 so that high divergence reads red.
            86.0 - 12.0 * unit(d)
        ),
        None => "background:#e5e7eb".to_string(),
    }
}

/// The element id of a group's section (unescaped).
fn group_anchor(question_id: &str, model_id: &str) -> String {
    format!("group-{question_id}-{model_id}")
}

/// CSS class and label of an answer's label (or stored classification).
fn classification(c: &str) -> (&'static str, String) {
    match c {
        "substantive" => ("cls-ok", "Substantive".into()),
        "content_refusal" | "refusal" => ("cls-refused", "Refused".into()),
        "partial" => ("cls-partial", "Partial".into()),
        "empty_response" => ("cls-empty", "Empty".into()),
        "technical_failure" => ("cls-failed", "Technical failure".into()),
        "none" => ("cls-none", "Not answered".into()),
        other => ("cls-none", escape(other)),
    }
}

/// CSS class of a job or execution status.
fn status_class(s: &str) -> &'static str {
    match s {
        "completed" => "st-ok",
        "failed" | "timeout" => "st-bad",
        "cancelled" => "st-warn",
        _ => "st-info",
    }
}

/// CSS class of a risk level or severity (`HIGH`, `medium`, …).
fn severity_class(s: &str) -> &'static str {
    match s.to_ascii_lowercase().as_str() {
        "high" => "sev-high",
        "medium" => "sev-medium",
        "low" => "sev-low",
        _ => "sev-none",
    }
}

/// A region withheld its answer in a group: flagged as censored, or every answer it
/// gave is a refusal or empty.
fn refused(g: &Group, region: &str) -> bool {
    if g.censorship.get(region).copied().unwrap_or(false) {
        return true;
    }
    g.tally
        .get(region)
        .is_some_and(|t| t.answers > 0 && t.withheld_any == t.answers)
}

/// The job's regions in plan order, then any other region an answer names.
fn all_regions(report: &Report) -> Vec<&str> {
    let mut out: Vec<&str> = report.regions.iter().map(String::as_str).collect();
    for region in report.groups.iter().flat_map(|g| g.tally.keys()) {
        if !out.contains(&region.as_str()) {
            out.push(region);
        }
    }
    out
}
