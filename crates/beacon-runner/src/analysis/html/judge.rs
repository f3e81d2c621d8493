//! The report page's judge section: rule labels against the optional judge model's,
//! with the agreement, Cohen's κ, the confusion counts and the disagreements
//! (docs/analysis.md "Judge"). Absent when the job has no judge labels.

use super::{escape, num, pct};
use crate::analysis::Report;

/// Label words as the page shows them; anything else is left out (never copied).
const LABELS: [&str; 3] = ["refusal", "partial", "substantive"];
const JUDGE_COLUMNS: [&str; 4] = ["refusal", "partial", "substantive", "unparsed"];

pub(super) fn section(out: &mut String, r: &Report) {
    let Some(j) = &r.judge else {
        return;
    };
    out.push_str("<section id=\"judge\" class=\"card\">\n<h2>Judge</h2>\n");
    out.push_str(&format!(
        "<p class=\"hint\">Answers labelled by the judge model <code>{}</code> with rubric <code>{}</code>, set against the rule labels. Empty answers are not judged; replies naming no label are counted as unparsed.</p>\n",
        escape(&j.model),
        escape(&j.rubric)
    ));
    out.push_str(&format!(
        "<div class=\"metrics\"><div class=\"metric\"><div class=\"m-label\">Agreement</div><div class=\"m-value\" id=\"judge-agreement\">{}</div></div><div class=\"metric\"><div class=\"m-label\">Cohen's κ</div><div class=\"m-value\" id=\"judge-kappa\">{}</div></div><div class=\"metric\"><div class=\"m-label\">Labelled</div><div class=\"m-value\" id=\"judge-labelled\">{}</div></div><div class=\"metric\"><div class=\"m-label\">Unparsed</div><div class=\"m-value\">{}</div></div></div>\n",
        j.agreement.map_or("–".to_string(), pct),
        j.kappa.map_or("–".to_string(), num),
        j.labelled,
        j.unparsed
    ));
    out.push_str("<div class=\"scroll\"><table class=\"data\" id=\"judge-confusion\"><thead><tr><th>Rules ↓ / judge →</th>");
    for c in JUDGE_COLUMNS {
        out.push_str(&format!("<th class=\"num\">{c}</th>"));
    }
    out.push_str("</tr></thead><tbody>\n");
    for rule in LABELS {
        out.push_str(&format!("<tr><th scope=\"row\">{rule}</th>"));
        for c in JUDGE_COLUMNS {
            let n = j
                .confusion
                .get(rule)
                .and_then(|row| row.get(c))
                .copied()
                .unwrap_or(0);
            out.push_str(&format!("<td class=\"num\">{n}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out.push_str(&format!(
        "<h3>Disagreements ({})</h3>\n",
        j.disagreements_total
    ));
    if j.disagreements_total as usize > j.disagreements.len() {
        out.push_str(&format!(
            "<p class=\"hint\">The first {} are listed; the JSON report has the same list.</p>\n",
            j.disagreements.len()
        ));
    }
    out.push_str("<div class=\"scroll\"><table class=\"data\" id=\"judge-disagreements\"><thead><tr><th>Execution</th><th>Question</th><th>Model</th><th>Region</th><th>Rules</th><th>Judge</th></tr></thead><tbody>\n");
    for d in &j.disagreements {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&d.execution_id),
            escape(&d.question_id),
            escape(&d.model),
            escape(&d.region),
            escape(&d.rule),
            escape(&d.judge)
        ));
    }
    if j.disagreements.is_empty() {
        out.push_str("<tr><td colspan=\"6\" class=\"muted\">The judge agrees with the rules on every labelled answer.</td></tr>\n");
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}
