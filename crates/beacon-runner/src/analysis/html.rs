//! The self-contained HTML report page (placeholder until the page is written).

use super::Report;

/// Renders the report page.
pub fn render(report: &Report) -> String {
    format!("<!doctype html><title>{}</title>", escape(&report.job_id))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
