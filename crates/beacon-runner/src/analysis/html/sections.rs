//! The page's job-level sections: header with status and counts, the simulator banner,
//! the analysis box, the divergence heat map and the per-region table.

use serde_json::Value;

use super::{
    Report, all_regions, escape, heat, num, pct, refused, severity_class, signed, status_class,
    unit,
};

/// A count from the report's `counts` object, as text.
fn count(counts: &Value, key: &str) -> String {
    match counts.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "–".to_string(),
    }
}

fn nonzero(counts: &Value, key: &str) -> bool {
    counts.get(key).and_then(Value::as_u64).unwrap_or(0) > 0
}

pub(super) fn header(out: &mut String, r: &Report) {
    let questions = {
        let mut seen: Vec<&str> = Vec::new();
        for g in &r.groups {
            if !seen.contains(&g.question_id.as_str()) {
                seen.push(&g.question_id);
            }
        }
        seen.len()
    };
    out.push_str(&format!(
        "<header class=\"top\"><div class=\"wrap\">\n<div class=\"title-row\"><span class=\"logo\">Beacon</span><h1>Cross-region report</h1><span class=\"status {}\" id=\"job-status\">{}</span></div>\n",
        status_class(&r.status),
        escape(&r.status)
    ));
    out.push_str(&format!(
        "<p class=\"sub\">Job <code id=\"job-id\">{}</code> · generated <time>{}</time> · {} questions × {} models × {} regions</p>\n",
        escape(&r.job_id),
        escape(&r.generated_at),
        questions,
        r.models.len(),
        r.regions.len()
    ));
    out.push_str("<div class=\"counts\" id=\"counts\">");
    let mut shown: Vec<(&str, &str)> = vec![
        ("total", "total"),
        ("completed", "completed"),
        ("failed", "failed"),
    ];
    if nonzero(&r.counts, "timeout") {
        shown.push(("timeout", "timed out"));
    }
    shown.push(("cancelled", "cancelled"));
    for k in ["pending", "running", "retrying"] {
        if nonzero(&r.counts, k) {
            shown.push((k, k));
        }
    }
    for (key, label) in shown {
        out.push_str(&format!(
            "<div class=\"count c-{key}\" data-count=\"{key}\"><span class=\"n\">{}</span><span class=\"l\">{label}</span></div>",
            escape(&count(&r.counts, key))
        ));
    }
    out.push_str("</div>\n");
    if !r.terminal {
        out.push_str("<p class=\"live\">The job has not finished: this report covers the answers stored so far and will change.</p>\n");
    }
    out.push_str("</div></header>\n");
}

pub(super) fn simulator_banner(out: &mut String, r: &Report) {
    let all = r.groups.iter().flat_map(|g| g.tally.values());
    let (sim, total) = all.fold((0, 0), |(s, t), a| (s + a.simulated, t + a.answers));
    out.push_str(&format!(
        "<div id=\"simulator-banner\" class=\"banner\" role=\"alert\"><strong>Simulated answers — not real models.</strong> {sim} of {total} answers came from <code>beacon-sim</code>, Beacon's simulator, not from real models. The regional differences below were scripted by the simulator's scenario and say nothing about how any real model behaves.</div>\n"
    ));
}

/// One of the analysis box's numbers: value, a bar and what it means.
fn metric(out: &mut String, id: &str, label: &str, value: f64, meaning: &str) {
    out.push_str(&format!(
        "<div class=\"metric\" id=\"metric-{id}\"><div class=\"m-label\">{label}</div><div class=\"m-value\">{}</div><div class=\"bar\"><span style=\"width:{:.1}%\"></span></div><div class=\"m-meaning\">{meaning}</div></div>",
        num(value),
        unit(value) * 100.0
    ));
}

pub(super) fn analysis(out: &mut String, r: &Report) {
    let a = &r.analysis;
    out.push_str("<section id=\"analysis\" class=\"card\">\n<h2>Analysis</h2>\n");
    out.push_str(&format!(
        "<div class=\"risk-row\"><span class=\"risk {}\" id=\"risk-level\">{} risk</span><p class=\"recommendation\">{}</p></div>\n",
        severity_class(&a.risk_level),
        escape(&a.risk_level),
        escape(&a.recommendation)
    ));
    out.push_str("<div class=\"metrics\">");
    metric(
        out,
        "narrative-divergence",
        "Narrative divergence",
        a.narrative_divergence,
        "How differently regions answer sensitive questions: 0 alike, 1 unrelated.",
    );
    metric(
        out,
        "censorship-rate",
        "Censorship rate",
        a.censorship_rate,
        "Share of sensitive region cells refused or empty while another region answered.",
    );
    metric(
        out,
        "deflection-rate",
        "Deflection rate",
        a.deflection_rate,
        "Share of sensitive region cells answered only partially (hedged, an official position, another question) while another region answered. Counted apart from censorship.",
    );
    metric(
        out,
        "factual-consistency",
        "Factual consistency",
        a.factual_consistency,
        "Share of key facts (markers) mentioned alike in every region.",
    );
    metric(
        out,
        "bias-variance",
        "Bias variance",
        a.bias_variance,
        "Spread of the regions' answer rates on sensitive questions: 0 equal.",
    );
    metric(
        out,
        "coverage",
        "Coverage",
        a.coverage,
        "Completed executions out of all: how much of the job the scores rest on.",
    );
    out.push_str("</div>\n<div class=\"two-col\">\n<div><h3>Control differential</h3><p class=\"hint\">Refusal rate on sensitive questions minus on control questions: above 0, a region refuses sensitive topics specifically.</p><table class=\"data mini\" id=\"control-differential\"><thead><tr><th>Region</th><th class=\"num\">Differential</th></tr></thead><tbody>");
    for (region, d) in &a.control_differential {
        out.push_str(&format!(
            "<tr data-region=\"{}\"><td>{}</td><td class=\"num{}\">{}</td></tr>",
            escape(region),
            escape(region),
            if *d >= crate::analysis::scores::MEDIUM_CONTROL_DIFFERENTIAL {
                " hot"
            } else {
                ""
            },
            signed(*d)
        ));
    }
    if a.control_differential.is_empty() {
        out.push_str("<tr><td colspan=\"2\" class=\"muted\">No regions.</td></tr>");
    }
    out.push_str("</tbody></table></div>\n<div><h3>Risk assessment</h3><ul class=\"risks\" id=\"risk-assessment\">");
    for risk in &a.risk_assessment {
        out.push_str(&format!(
            "<li><span class=\"sev {}\">{}</span> <strong>{}</strong> {}",
            severity_class(&risk.severity),
            escape(&risk.severity),
            escape(&risk.kind.replace('_', " ")),
            escape(&risk.description)
        ));
        out.push_str(&format!(
            "<span class=\"muted small\"> · confidence {}",
            num(risk.confidence)
        ));
        if !risk.regions.is_empty() {
            out.push_str(&format!(" · {}", escape(&risk.regions.join(", "))));
        }
        out.push_str("</span></li>");
    }
    if a.risk_assessment.is_empty() {
        out.push_str("<li class=\"muted\">No risk found.</li>");
    }
    out.push_str("</ul></div>\n</div>\n");
    out.push_str(&format!(
        "<p class=\"summary\">{}</p>\n</section>\n",
        escape(&a.summary)
    ));
}

/// The heat map: one row per question (first-seen order), one column per model.
pub(super) fn heatmap(out: &mut String, r: &Report, paging: &super::Paging) {
    // Cell lookups by (question, model): a 100,000-execution job has thousands.
    let index: std::collections::HashMap<(&str, &str), usize> = r
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.question_id.as_str(), g.model_id.as_str()), i))
        .collect();
    let mut questions: Vec<&super::Group> = Vec::new();
    let mut models: Vec<&str> = r.models.iter().map(String::as_str).collect();
    for g in &r.groups {
        if questions
            .last()
            .is_none_or(|q| q.question_id != g.question_id)
            && !questions.iter().any(|q| q.question_id == g.question_id)
        {
            questions.push(g);
        }
        if !models.contains(&g.model_id.as_str()) {
            models.push(&g.model_id);
        }
    }
    let regions = all_regions(r);
    out.push_str("<section id=\"heatmap-section\" class=\"card\">\n<h2>Divergence by question and model</h2>\n");
    out.push_str("<p class=\"hint\">Divergence is 1 − the mean similarity of the regions' answers to the same question from the same model. <span class=\"legend\"><span class=\"legend-bar\"></span> 0 alike → 1 unrelated</span> <span class=\"na-chip\">n/a</span> fewer than two regions answered. <span class=\"refusal-sample\">✕ region</span> that region refused or returned nothing. Click a cell for the answers.</p>\n");
    out.push_str("<div class=\"scroll\"><table id=\"heatmap\">\n<thead><tr><th class=\"corner\">Question</th>");
    for m in &models {
        out.push_str(&format!("<th scope=\"col\">{}</th>", escape(m)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for q in &questions {
        out.push_str(&format!(
            "<tr><th scope=\"row\"><code>{}</code><span class=\"qmeta\">{}{}</span><span class=\"qtext\">{}</span></th>",
            escape(&q.question_id),
            escape(&q.category.replace('_', " ")),
            if q.sensitive { " · sensitive" } else { "" },
            escape(&shorten(&q.question, 90))
        ));
        for m in &models {
            let Some(&i) = index.get(&(q.question_id.as_str(), *m)) else {
                out.push_str("<td class=\"nocell\">—</td>");
                continue;
            };
            let g = &r.groups[i];
            let value = g.divergence.map(num).unwrap_or_default();
            out.push_str(&format!(
                "<td class=\"cell\" data-question=\"{}\" data-model=\"{}\" data-divergence=\"{}\" style=\"{}\"><a href=\"{}\">",
                escape(&g.question_id),
                escape(&g.model_id),
                value,
                heat(g.divergence),
                paging.link(i, g)
            ));
            match g.divergence {
                Some(_) => out.push_str(&format!("<span class=\"dv\">{value}</span>")),
                None => out.push_str("<span class=\"dv na\">n/a</span>"),
            }
            let marks: Vec<&&str> = regions.iter().filter(|reg| refused(g, reg)).collect();
            if !marks.is_empty() {
                out.push_str("<span class=\"marks\">");
                for reg in marks {
                    out.push_str(&format!(
                        "<span class=\"refusal-mark\" data-region=\"{0}\" title=\"{0}: refused or empty\">✕ {0}</span>",
                        escape(reg)
                    ));
                }
                out.push_str("</span>");
            }
            out.push_str("</a></td>");
        }
        out.push_str("</tr>\n");
    }
    if questions.is_empty() {
        out.push_str(&format!(
            "<tr><td colspan=\"{}\" class=\"muted\">No answers yet.</td></tr>\n",
            models.len() + 1
        ));
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

pub(super) fn regions(out: &mut String, r: &Report) {
    out.push_str("<section id=\"regions\" class=\"card\">\n<h2>Regions</h2>\n<p class=\"hint\">Rates over completed answers. Sensitive questions are the ones whose answers may be censored; control questions should be answered alike everywhere.</p>\n<div class=\"scroll\"><table class=\"data\" id=\"region-scores\"><thead><tr><th>Region</th><th class=\"num\">Answered (sensitive)</th><th class=\"num\">Partial (sensitive)</th><th class=\"num\">Refused (sensitive)</th><th class=\"num\">Refused (control)</th><th class=\"num\">Control differential</th><th class=\"num\">Censored cells</th><th class=\"num\">Key facts mentioned</th><th class=\"num\">Technical failures</th></tr></thead><tbody>\n");
    for (region, s) in &r.region_scores {
        out.push_str(&format!(
            "<tr data-region=\"{0}\"><th scope=\"row\">{0}{1}</th><td class=\"num\">{2}</td><td class=\"num\">{11}</td><td class=\"num{3}\">{4}</td><td class=\"num\">{5}</td><td class=\"num\">{6}</td><td class=\"num\">{7} of {8}</td><td class=\"num\">{9}</td><td class=\"num\">{10}</td></tr>\n",
            escape(region),
            if s.censorship_detected {
                " <span class=\"flag\">censorship</span>"
            } else {
                ""
            },
            pct(s.substantive_rate),
            if s.sensitive_refusal_rate > 0.0 {
                " hot"
            } else {
                ""
            },
            pct(s.sensitive_refusal_rate),
            pct(s.control_refusal_rate),
            signed(s.control_differential),
            s.censored_cells,
            s.sensitive_cells,
            pct(s.factual_accuracy),
            s.technical_failures,
            pct(s.partial_rate)
        ));
    }
    if r.region_scores.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">No regions.</td></tr>\n");
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}
