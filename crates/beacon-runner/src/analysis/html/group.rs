//! One section per (question, model) group: the question, its divergence, pair
//! similarities, key differences with snippets, and the answers side by side (one
//! column per region, runs stacked) with their provenance.

use super::{
    ANSWERS_PER_GROUP, Paging, Report, all_regions, classification, escape, group_anchor, heat,
    num, refused, status_class,
};
use crate::analysis::{Answer, Group};

pub(super) fn groups(out: &mut String, r: &Report, paging: &Paging) {
    let regions = all_regions(r);
    out.push_str(
        "<section id=\"answers\">\n<h2 class=\"section-title\">Answers side by side</h2>\n",
    );
    if r.groups.is_empty() {
        out.push_str("<p class=\"card muted\">No answers yet.</p>\n");
    }
    let pages = paging.pages(r.groups.len());
    let range = paging.range(r.groups.len());
    if pages > 1 {
        nav(out, r, paging, pages, &range);
    }
    for i in range.clone() {
        let g = &r.groups[i];
        let answers = paging.answers.get(&i).map_or(&g.answers[..], Vec::as_slice);
        group(out, g, answers, &regions);
    }
    if pages > 1 {
        nav(out, r, paging, pages, &range);
    }
    out.push_str("</section>\n");
}

/// Where this page is among the pages of groups, links to the neighbours and the
/// first and last, and where every answer is.
fn nav(
    out: &mut String,
    r: &Report,
    paging: &Paging,
    pages: usize,
    range: &std::ops::Range<usize>,
) {
    let link = |page: usize, label: &str| {
        format!(
            "<a class=\"page-link\" rel=\"{}\" href=\"?page={page}&amp;per_page={}\">{label}</a>",
            if page < paging.page { "prev" } else { "next" },
            paging.per_page
        )
    };
    out.push_str("<nav class=\"pages card\" aria-label=\"pages of groups\">");
    out.push_str(&format!(
        "<span>Groups {}–{} of {} · page {} of {pages}</span> ",
        range.start + 1,
        range.end,
        r.groups.len(),
        paging.page
    ));
    if paging.page > 1 {
        out.push_str(&link(1, "first"));
        out.push_str(&link(paging.page - 1, "previous"));
    }
    if paging.page < pages {
        out.push_str(&link(paging.page + 1, "next"));
        out.push_str(&link(pages, "last"));
    }
    out.push_str(&format!(
        " <span class=\"muted\">every answer: <code>{}</code></span></nav>\n",
        escape(&r.answers_export)
    ));
}

fn group(out: &mut String, g: &Group, answers: &[Answer], regions: &[&str]) {
    out.push_str(&format!(
        "<article class=\"card group\" id=\"{}\" data-question=\"{}\" data-model=\"{}\">\n",
        escape(&group_anchor(&g.question_id, &g.model_id)),
        escape(&g.question_id),
        escape(&g.model_id)
    ));
    out.push_str(&format!(
        "<header class=\"group-head\"><div><h3><code>{}</code> <span class=\"on\">on</span> {}</h3><span class=\"tag\">{}</span><span class=\"tag {}\">{}</span></div><div class=\"div-badge\" style=\"{}\"><span class=\"l\">divergence</span><span class=\"n\">{}</span></div></header>\n",
        escape(&g.question_id),
        escape(&g.model_id),
        escape(&g.category.replace('_', " ")),
        if g.sensitive { "tag-sens" } else { "tag-ctrl" },
        if g.sensitive { "sensitive" } else { "control" },
        heat(g.divergence),
        g.divergence.map_or_else(|| "n/a".to_string(), num)
    ));
    out.push_str(&format!(
        "<blockquote class=\"question\">{}</blockquote>\n",
        escape(&g.question)
    ));

    // Numbers about the group: noise, refusals, pair similarities.
    out.push_str("<div class=\"facts\">");
    if let Some(w) = g.within_region_divergence {
        out.push_str(&format!(
            "<span>within-region divergence <b>{}</b></span>",
            num(w)
        ));
    }
    if let Some(b) = g.divergence_beyond_noise {
        out.push_str(&format!("<span>beyond noise <b>{}</b></span>", num(b)));
    }
    let withheld: Vec<&&str> = regions.iter().filter(|reg| refused(g, reg)).collect();
    if !withheld.is_empty() {
        out.push_str("<span>refused in ");
        for reg in withheld {
            out.push_str(&format!(
                "<span class=\"refusal-chip\">✕ {}</span>",
                escape(reg)
            ));
        }
        out.push_str("</span>");
    }
    if !g.markers.is_empty() {
        out.push_str("<span>markers ");
        for m in &g.markers {
            out.push_str(&format!("<span class=\"marker\">{}</span>", escape(m)));
        }
        out.push_str("</span>");
    }
    out.push_str("</div>\n");
    if !g.pairs.is_empty() {
        out.push_str("<div class=\"pairs\"><span class=\"k\">Pair similarity</span>");
        for p in &g.pairs {
            out.push_str(&format!(
                "<span class=\"pair\">{} ↔ {} <b>{}</b></span>",
                escape(&p.a),
                escape(&p.b),
                num(p.similarity)
            ));
        }
        out.push_str("</div>\n");
    }

    if !g.key_differences.is_empty() {
        out.push_str("<div class=\"scroll\"><table class=\"data kd\"><thead><tr><th>Key difference</th><th>Mentioned in</th><th>Missing from</th><th>In context</th></tr></thead><tbody>");
        for d in &g.key_differences {
            out.push_str(&format!(
                "<tr><td><span class=\"marker\">{}</span></td><td>{}</td><td>{}</td><td>",
                escape(&d.marker),
                escape(&d.present_in.join(", ")),
                escape(&d.absent_from.join(", "))
            ));
            for (region, snippet) in &d.snippets {
                out.push_str(&format!(
                    "<div class=\"snip\"><span class=\"r\">{}</span> {}</div>",
                    escape(region),
                    highlight(snippet, &d.marker)
                ));
            }
            out.push_str("</td></tr>");
        }
        out.push_str("</tbody></table></div>\n");
    }

    // The answers: one column per region that has any, runs stacked.
    out.push_str("<div class=\"answers\">\n");
    // At most ANSWERS_PER_GROUP, in region order then run: a group of thousands of
    // runs is counted here and read in the export.
    let shown = &answers[..answers.len().min(ANSWERS_PER_GROUP)];
    let omitted = g.answers_total.saturating_sub(shown.len() as u64);
    for region in regions {
        let mut mine: Vec<&Answer> = shown.iter().filter(|a| a.region == *region).collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_by_key(|a| a.run_index);
        out.push_str(&format!(
            "<div class=\"region-col\" data-region=\"{}\"><h4>{}</h4>\n",
            escape(region),
            escape(region)
        ));
        for a in mine {
            answer(out, a);
        }
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n");
    if omitted > 0 {
        out.push_str(&format!(
            "<p class=\"more muted\">{omitted} more answers of this group are in the JSON lines export.</p>\n"
        ));
    }
    out.push_str("</article>\n");
}

fn answer(out: &mut String, a: &Answer) {
    let (class, label) = classification(&a.label);
    out.push_str(&format!(
        "<div class=\"answer {class}\" data-execution=\"{}\"><div class=\"answer-head\"><span class=\"label {class}\">{label}</span><span class=\"run\">run {}</span>",
        escape(&a.execution_id),
        a.run_index + 1
    ));
    if a.status != "completed" {
        out.push_str(&format!(
            "<span class=\"status small {}\">{}</span>",
            status_class(&a.status),
            escape(&a.status)
        ));
    }
    if a.simulated {
        out.push_str("<span class=\"tag tag-sim\">simulated</span>");
    }
    out.push_str("</div>\n");
    match a.response.as_deref() {
        Some(text) if !text.is_empty() => out.push_str(&format!(
            "<div class=\"answer-text\">{}</div>\n",
            escape(text)
        )),
        Some(_) => out.push_str("<p class=\"muted no-text\">(empty response)</p>\n"),
        None => out.push_str("<p class=\"muted no-text\">(no response)</p>\n"),
    }
    if let Some(code) = &a.failure_code {
        out.push_str(&format!(
            "<p class=\"failure\">Failure: <code>{}</code></p>\n",
            escape(code)
        ));
    }
    if !a.markers_present.is_empty() {
        out.push_str("<div class=\"markers-present\">");
        for m in &a.markers_present {
            out.push_str(&format!("<span class=\"marker\">{}</span>", escape(m)));
        }
        out.push_str("</div>\n");
    }
    let dash = || "—".to_string();
    let receipt = a.receipt_sha256.as_deref().map_or_else(dash, |h| {
        format!(
            "<code title=\"SHA-256 {}\">{}</code>",
            escape(h),
            escape(&h.chars().take(16).collect::<String>())
        )
    });
    out.push_str(&format!(
        "<dl class=\"prov\"><dt>Provider</dt><dd>{}</dd><dt>Region label</dt><dd>{}</dd><dt>Latency</dt><dd>{}</dd><dt>Receipt</dt><dd>{}</dd><dt>Execution</dt><dd><code>{}</code></dd></dl>\n</div>\n",
        a.provider_id.as_deref().map_or_else(dash, escape),
        a.provider_region_label.as_deref().map_or_else(dash, escape),
        a.latency_ms.map_or_else(dash, |ms| format!("{ms} ms")),
        receipt,
        escape(&a.execution_id)
    ));
}

/// `text` escaped, with the first case-insensitive occurrence of `marker` in `<mark>`.
fn highlight(text: &str, marker: &str) -> String {
    let (lower, needle) = (text.to_lowercase(), marker.to_lowercase());
    // Byte offsets of the lower-cased text are only usable when lower-casing kept them.
    if !needle.is_empty() && lower.len() == text.len() {
        if let Some(i) = lower.find(&needle) {
            let j = i + needle.len();
            if text.is_char_boundary(i) && text.is_char_boundary(j) {
                return format!(
                    "{}<mark>{}</mark>{}",
                    escape(&text[..i]),
                    escape(&text[i..j]),
                    escape(&text[j..])
                );
            }
        }
    }
    escape(text)
}
