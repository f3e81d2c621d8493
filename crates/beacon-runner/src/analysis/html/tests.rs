//! The page: escaping of hostile strings, the simulator banner, the heat map's cells.

use std::collections::BTreeMap;

use serde_json::json;

use super::{escape, render};
use crate::analysis::{Answer, Group, JobScores, MarkerDifference, Pair, RegionScore, Report};

const HOSTILE: &str = "<script>alert(1)</script>";

fn answer(region: &str, classification: &str, text: &str, simulated: bool) -> Answer {
    Answer {
        execution_id: format!("ex-{region}-{}", text.len()),
        region: region.into(),
        run_index: 0,
        status: "completed".into(),
        classification: classification.into(),
        label: match classification {
            "content_refusal" => "refusal",
            other => other,
        }
        .into(),
        response: Some(text.into()),
        length: text.chars().count(),
        markers_present: Vec::new(),
        provider_id: Some(format!("sim-{region}")),
        provider_region_label: Some(region.into()),
        latency_ms: Some(12),
        receipt_sha256: Some("ab".repeat(32)),
        simulated,
        failure_code: None,
    }
}

fn group(question_id: &str, model_id: &str, answers: Vec<Answer>, refused: &[&str]) -> Group {
    Group {
        question_id: question_id.into(),
        question: format!("Question {question_id}?"),
        category: "bias_detection".into(),
        sensitive: true,
        markers: vec!["protest".into()],
        model_id: model_id.into(),
        divergence: Some(0.456),
        pairs: vec![Pair {
            a: "us-east".into(),
            b: "eu-west".into(),
            similarity: 0.5,
        }],
        within_region_divergence: None,
        divergence_beyond_noise: None,
        censorship: ["us-east", "eu-west", "asia-pacific"]
            .iter()
            .map(|r| (r.to_string(), refused.contains(r)))
            .collect(),
        deflection: Default::default(),
        key_differences: Vec::new(),
        tally: crate::analysis::groups::tally(&answers),
        answers_total: answers.len() as u64,
        answers,
    }
}

fn report(groups: Vec<Group>, simulated: bool) -> Report {
    Report {
        job_id: "job-1".into(),
        status: "completed".into(),
        generated_at: "2025-01-01T00:00:00Z".into(),
        terminal: true,
        counts: json!({"total": 6, "completed": 5, "failed": 1, "cancelled": 0}),
        simulated,
        regions: vec!["us-east".into(), "eu-west".into(), "asia-pacific".into()],
        models: vec!["m1".into(), "m2".into()],
        groups,
        region_scores: ["us-east", "eu-west", "asia-pacific"]
            .iter()
            .map(|r| (r.to_string(), RegionScore::default()))
            .collect(),
        analysis: JobScores {
            narrative_divergence: 0.4,
            censorship_rate: 0.2,
            deflection_rate: 0.0,
            factual_consistency: 0.8,
            bias_variance: 0.1,
            control_differential: BTreeMap::from([("asia-pacific".to_string(), 0.5)]),
            coverage: 5.0 / 6.0,
            key_differences: Vec::new(),
            risk_assessment: Vec::new(),
            risk_level: "HIGH".into(),
            summary: "summary".into(),
            recommendation: "HIGH RISK: review".into(),
        },
        answers_total: 6,
        answers_included: 6,
        answers_truncated: false,
        answers_export: crate::analysis::answers_export("job-1"),
        judge: None,
    }
}

fn plain_groups(simulated: bool) -> Vec<Group> {
    let answers = |s| {
        vec![
            answer("us-east", "substantive", "A full answer.", s),
            answer("eu-west", "substantive", "Another answer.", s),
            answer("asia-pacific", "content_refusal", "I can't.", s),
        ]
    };
    vec![
        group("q1", "m1", answers(simulated), &["asia-pacific"]),
        group("q1", "m2", answers(simulated), &["asia-pacific"]),
        group("q2", "m1", answers(simulated), &[]),
    ]
}

/// Every tag of the page, as (name, attributes), checking on the way that the markup
/// is well formed: every `<` opens a tag, attribute values are double-quoted and hold
/// no raw `<`, `>` or `"`, and nothing follows a tag's attributes but `>`.
fn tags(page: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = page;
    let mut in_style = false;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if in_style {
            assert!(rest.starts_with("/style>"), "a '<' inside the stylesheet");
            in_style = false;
        }
        if let Some(r) = rest.strip_prefix("!doctype html>") {
            rest = r;
            continue;
        }
        let closing = rest.starts_with('/');
        let body = if closing { &rest[1..] } else { rest };
        let name_len = body
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(body.len());
        let name = body[..name_len].to_string();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "raw '<' in text near {:?}",
            &rest[..rest.len().min(40)]
        );
        let mut s = &body[name_len..];
        let mut attrs = Vec::new();
        loop {
            s = s.trim_start();
            if let Some(r) = s.strip_prefix('>') {
                s = r;
                break;
            }
            let n = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(s.len());
            assert!(n > 0, "junk in <{name}> near {:?}", &s[..s.len().min(40)]);
            let attr = s[..n].to_string();
            s = s[n..]
                .strip_prefix("=\"")
                .unwrap_or_else(|| panic!("attribute {attr} of <{name}> is not quoted"));
            let end = s.find('"').unwrap_or_else(|| panic!("unterminated {attr}"));
            let value = &s[..end];
            assert!(
                !value.contains('<') && !value.contains('>'),
                "raw < or > in {attr}={value:?}"
            );
            attrs.push((attr, value.to_string()));
            s = &s[end + 1..];
        }
        if name == "style" && !closing {
            in_style = true;
        }
        assert_ne!(name, "script", "a script element");
        if !closing {
            out.push((name, attrs));
        }
        rest = s;
    }
    out
}

fn attr<'a>(tag: &'a (String, Vec<(String, String)>), name: &str) -> Option<&'a str> {
    tag.1
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn escape_covers_the_five_characters() {
    assert_eq!(
        escape(r#"<a href="x" title='y'>&</a>"#),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
    );
}

#[test]
fn hostile_strings_render_as_text_and_attributes_stay_well_formed() {
    let qid = "q\"<x";
    let mut hostile = answer("us-east", "substantive", HOSTILE, true);
    hostile.failure_code = Some("<b>code</b>".into());
    hostile.provider_id = Some("\"><script>".into());
    hostile.markers_present = vec!["m\"<b>".into()];
    let mut g = group(
        qid,
        "m1\"><img src=x>",
        vec![
            hostile,
            answer("eu-west", "substantive", "fine", true),
            answer("asia-pacific", "content_refusal", "<i>no</i>", true),
        ],
        &["asia-pacific"],
    );
    g.question = format!("Repeat: {HOSTILE}");
    g.markers = vec!["m\"<b>".into()];
    g.category = "<custom>".into();
    g.key_differences = vec![MarkerDifference {
        marker: "m\"<b>".into(),
        present_in: vec!["us-east".into()],
        absent_from: vec!["eu-west".into()],
        snippets: BTreeMap::from([("us-east".to_string(), format!("…{HOSTILE} M\"<B> after…"))]),
    }];
    let mut r = report(vec![g], true);
    r.job_id = "job\"'<>&".into();
    r.analysis.recommendation = HOSTILE.into();
    r.analysis.summary = HOSTILE.into();
    r.status = "<status>".into();
    r.counts = json!({"total": "<9>", "completed": 1, "failed": 0, "cancelled": 0});
    let page = render(&r);

    assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<b>code") && !page.contains("<i>no"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("m&quot;&lt;b&gt;"));
    assert!(
        page.contains(
            "…&lt;script&gt;alert(1)&lt;/script&gt; <mark>M&quot;&lt;B&gt;</mark> after…"
        )
    );
    let tags = tags(&page);
    let cells: Vec<_> = tags
        .iter()
        .filter(|t| attr(t, "class") == Some("cell"))
        .collect();
    assert_eq!(cells.len(), 1);
    assert_eq!(attr(cells[0], "data-question"), Some("q&quot;&lt;x"));
    assert_eq!(
        attr(cells[0], "data-model"),
        Some("m1&quot;&gt;&lt;img src=x&gt;")
    );
    assert_eq!(attr(cells[0], "data-divergence"), Some("0.46"));
    let section = tags
        .iter()
        .find(|t| t.0 == "article")
        .expect("a group section");
    assert_eq!(
        attr(section, "id"),
        Some("group-q&quot;&lt;x-m1&quot;&gt;&lt;img src=x&gt;")
    );
}

#[test]
fn the_page_is_a_complete_document_without_script_or_external_urls() {
    let page = render(&report(plain_groups(false), false));
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.contains("<style>"));
    assert!(page.trim_end().ends_with("</html>"));
    for bad in ["<script", "http://", "https://", "src=", "url("] {
        assert!(!page.contains(bad), "{bad} in the page");
    }
    let tags = tags(&page);
    for (name, attrs) in &tags {
        for (a, v) in attrs {
            assert!(!a.starts_with("on"), "event handler {a} on <{name}>");
            if a == "href" {
                assert!(v.starts_with('#'), "non-local link {v}");
            }
        }
    }
    // Every cell links to a group section that exists.
    let ids: Vec<&str> = tags.iter().filter_map(|t| attr(t, "id")).collect();
    for t in tags.iter().filter(|t| t.0 == "a") {
        let target = attr(t, "href").unwrap().trim_start_matches('#');
        assert!(ids.contains(&target), "dangling link #{target}");
    }
}

#[test]
fn banner_appears_only_when_simulated() {
    let sim = render(&report(plain_groups(true), true));
    assert!(sim.contains("id=\"simulator-banner\""));
    assert!(sim.contains("beacon-sim"));
    assert!(sim.contains("9 of 9 answers"));
    let real = render(&report(plain_groups(false), false));
    assert!(!real.contains("simulator-banner"));
    assert!(!real.contains("class=\"tag tag-sim\""));
    assert!(sim.contains("class=\"tag tag-sim\""));
}

#[test]
fn heatmap_has_one_cell_per_group_and_marks_refusals() {
    let mut groups = plain_groups(false);
    groups[2].divergence = None;
    let page = render(&report(groups, false));
    let tags = tags(&page);
    let cells: Vec<_> = tags
        .iter()
        .filter(|t| attr(t, "class") == Some("cell"))
        .collect();
    assert_eq!(cells.len(), 3, "one cell per group");
    let keys: Vec<(&str, &str, &str)> = cells
        .iter()
        .map(|c| {
            (
                attr(c, "data-question").unwrap(),
                attr(c, "data-model").unwrap(),
                attr(c, "data-divergence").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [("q1", "m1", "0.46"), ("q1", "m2", "0.46"), ("q2", "m1", "")]
    );
    // q2 × m2 has no group: a placeholder, not a cell.
    assert_eq!(
        tags.iter()
            .filter(|t| attr(t, "class") == Some("nocell"))
            .count(),
        1
    );
    assert!(page.contains("<span class=\"dv na\">n/a</span>"));
    assert!(page.contains("background:#e5e7eb"));
    // Refusal marks: q1 flagged for asia-pacific; q2 not flagged but asia-pacific's
    // only answer is a refusal, which is marked too.
    let heatmap = &page[page.find("id=\"heatmap\"").unwrap()..page.find("id=\"regions\"").unwrap()];
    let marks = heatmap
        .matches("class=\"refusal-mark\" data-region=\"asia-pacific\"")
        .count();
    assert_eq!(marks, 3);
    assert!(!heatmap.contains("data-region=\"us-east\""));
}

#[test]
fn answers_show_provenance_and_failures() {
    let mut failed = answer("eu-west", "technical_failure", "", false);
    failed.response = None;
    failed.status = "failed".into();
    failed.failure_code = Some("provider_timeout".into());
    failed.receipt_sha256 = None;
    let g = group(
        "q1",
        "m1",
        vec![
            answer("us-east", "substantive", "line one\nline two", false),
            failed,
        ],
        &[],
    );
    let page = render(&report(vec![g], false));
    assert!(page.contains("line one\nline two"));
    assert!(page.contains(&format!(">{}</code>", "ab".repeat(8))));
    assert!(page.contains("<dd>sim-us-east</dd>"));
    assert!(page.contains("<dd>12 ms</dd>"));
    assert!(page.contains("Failure: <code>provider_timeout</code>"));
    assert!(page.contains("Technical failure"));
    assert!(page.contains("us-east ↔ eu-west <b>0.50</b>"));
}

#[test]
fn bidi_controls_are_shown_as_markers_not_passed_through() {
    // "txt.exe" would display as "exe.txt" after U+202E; every bidi control of the
    // Bidi_Control set, in an answer, a question, a snippet and a summary.
    let controls = [
        '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
        '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ];
    let all: String = controls.iter().collect();
    let spoof = format!("Paid by \u{202E}gnp.exe{all}");
    let mut a = answer("us-east", "substantive", &spoof, false);
    a.markers_present = vec!["paid".into()];
    let mut g = group("q1", "m1", vec![a], &[]);
    g.question = "Who \u{202E}paid?".to_string();
    g.key_differences = vec![MarkerDifference {
        marker: "paid".into(),
        present_in: vec!["us-east".into()],
        absent_from: vec!["eu-west".into()],
        snippets: BTreeMap::from([("us-east".to_string(), spoof.clone())]),
    }];
    let mut r = report(vec![g], false);
    r.analysis.summary = format!("\u{2067}{spoof}");
    let page = render(&r);
    for c in controls {
        assert!(!page.contains(c), "U+{:04X} reached the page", u32::from(c));
    }
    assert!(
        page.contains("Paid by [U+202E]gnp.exe[U+061C][U+200E]"),
        "{page}"
    );
    assert!(page.contains("Who [U+202E]paid?"));
    assert!(page.contains("[U+2067]Paid by"));
    // Joiners that scripts and emoji need are kept as they are.
    assert_eq!(escape("a\u{200D}b\u{200C}c"), "a\u{200D}b\u{200C}c");
    assert_eq!(escape("\u{FEFF}x\u{206E}"), "[U+FEFF]x[U+206E]");
}

#[test]
fn answers_are_marked_by_label_and_partials_counted_apart() {
    let mut hedge = answer("eu-west", "substantive", "Views differ.", false);
    hedge.label = "partial".into();
    let g = group(
        "q1",
        "m1",
        vec![
            answer("us-east", "substantive", "A full answer.", false),
            hedge,
            answer("asia-pacific", "content_refusal", "I can't.", false),
        ],
        &["asia-pacific"],
    );
    let page = render(&report(vec![g], false));
    assert!(page.contains("<span class=\"label cls-partial\">Partial</span>"));
    assert!(page.contains("<span class=\"label cls-refused\">Refused</span>"));
    assert!(page.contains("id=\"metric-deflection-rate\""));
    assert!(page.contains("<th class=\"num\">Partial (sensitive)</th>"));
}

/// The judge section shows the agreement, κ, the confusion counts and the
/// disagreements, escaped; without judge labels there is no section.
#[test]
fn the_judge_section_is_shown_only_with_labels() {
    use crate::analysis::{Disagreement, JudgeSummary};
    let mut r = report(plain_groups(false), false);
    assert!(!render(&r).contains("id=\"judge\""));
    let row = |n: [u64; 4]| {
        ["refusal", "partial", "substantive", "unparsed"]
            .iter()
            .zip(n)
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>()
    };
    r.judge = Some(JudgeSummary {
        rubric: "beacon-judge-v1".into(),
        model: "<script>judge".into(),
        labelled: 4,
        unparsed: 1,
        agreement: Some(0.75),
        kappa: Some(0.5),
        confusion: BTreeMap::from([
            ("refusal".to_string(), row([1, 0, 0, 1])),
            ("partial".to_string(), row([0, 0, 0, 0])),
            ("substantive".to_string(), row([0, 1, 2, 0])),
        ]),
        disagreements: vec![Disagreement {
            execution_id: "exec-7".into(),
            question_id: "taiwan_status".into(),
            model: "m1".into(),
            region: "eu-west".into(),
            rule: "substantive".into(),
            judge: "partial".into(),
        }],
        disagreements_total: 1,
    });
    let page = render(&r);
    assert!(page.contains("id=\"judge\""));
    assert!(
        page.contains("<div class=\"m-value\" id=\"judge-agreement\">75 %</div>"),
        "{page}"
    );
    assert!(page.contains("<div class=\"m-value\" id=\"judge-kappa\">0.50</div>"));
    assert!(page.contains("&lt;script&gt;judge") && !page.contains("<script>"));
    assert!(page.contains("<tr><th scope=\"row\">substantive</th><td class=\"num\">0</td><td class=\"num\">1</td><td class=\"num\">2</td><td class=\"num\">0</td></tr>"));
    assert!(page.contains("<td><code>exec-7</code></td><td>taiwan_status</td>"));
    assert!(page.contains("Disagreements (1)"));
}
