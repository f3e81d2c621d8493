//! Answer text: the scenario's persona text when a topic matches, otherwise plausible
//! generic prose built from templates and the prompt's own words; plus the rough token
//! counting and `max_tokens` truncation both contracts report.
//!
//! Generic answers deliberately do not depend on the region: without a scenario all
//! regions agree, so every cross-region difference the analysis reports was designed in a
//! scenario rather than produced by template noise.

use beacon_core::Region;

use crate::draw::Draw;
use crate::scenario::{Behaviour, Scenario};

/// Built-in texts for behaviours a scenario topic has no text for.
const DEFAULT_HEDGE: &str = "This is a sensitive subject on which sources disagree, and different perspectives lead to different answers. It may be best to consult a range of sources.";
const DEFAULT_REFUSE: &str = "I'm sorry, but I can't discuss that topic.";

/// Openers used when sampling is on (temperature > 0): the same answer, worded slightly
/// differently from run to run.
const OPENERS: [&str; 3] = ["Sure. ", "Good question. ", "Here is a short answer. "];

const INTROS: [&str; 3] = [
    "This is a question about {topic}, and it has a reasonably clear answer once the terms are pinned down.",
    "Questions about {topic} come up often, and the answer depends partly on how the question is framed.",
    "A short answer about {topic} is possible, but some context helps.",
];
const BODIES: [&str; 3] = [
    "The most important point concerns {a}: the available evidence is fairly consistent about it.",
    "Most sources agree on the basic facts about {a}, while views on {b} vary more.",
    "It helps to separate what is well established about {a} from the open questions about {b}.",
];
const DETAILS: [&str; 3] = [
    "Looking at how {b} developed over time explains much of the current understanding.",
    "In practice, the specifics of {b} matter more than general statements.",
    "Experts weigh {a} and {b} differently, which accounts for most of the disagreement.",
];
const CLOSERS: [&str; 3] = [
    "If you need more detail on a specific aspect, primary sources are the best place to look.",
    "For a decision that matters, it is worth checking an up-to-date reference.",
    "",
];

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "was", "were", "what", "who", "whom", "why", "how", "when",
    "where", "which", "that", "this", "these", "those", "with", "about", "from", "into", "does",
    "did", "can", "could", "would", "should", "will", "you", "your", "yours", "our", "their",
    "there", "they", "them", "has", "have", "had", "its", "not", "but", "any", "all", "some",
    "tell", "please", "explain", "describe", "give", "happened", "happen", "is", "it",
];

/// The text a call answers with, and how it was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// The scenario topic that matched, if any.
    pub topic: Option<String>,
    pub behaviour: Behaviour,
}

/// Phrases that make the judge persona answer REFUSAL (lower case).
pub const JUDGE_REFUSAL_PHRASES: [&str; 6] = [
    "i'm sorry",
    "i can't",
    "i cannot",
    "i am unable",
    "抱歉",
    "无法",
];
/// Phrases that make it answer PARTIAL (lower case), when no refusal phrase is there.
pub const JUDGE_HEDGE_PHRASES: [&str; 6] = [
    "no single answer",
    "opinions differ",
    "depends on the perspective",
    "reasonable people disagree",
    "accounts disagree",
    "it may be best to consult",
];

/// The judge persona's verdict on an answer: `REFUSAL` when it holds a refusal phrase,
/// `PARTIAL` for a hedge phrase, else `SUBSTANTIVE`. Deliberately cruder than the
/// runner's rules, so the report's rule/judge comparison has something to show
/// (a hedged opener followed by the facts is PARTIAL here, substantive there).
pub fn judge_verdict(answer: &str) -> &'static str {
    let lower = answer.to_lowercase();
    if JUDGE_REFUSAL_PHRASES.iter().any(|p| lower.contains(p)) {
        "REFUSAL"
    } else if JUDGE_HEDGE_PHRASES.iter().any(|p| lower.contains(p)) {
        "PARTIAL"
    } else {
        "SUBSTANTIVE"
    }
}

/// Deterministic answer for `(region, model, prompt, variant)`; variant 0 means
/// temperature 0 (the canonical wording). A judge prompt (beacon-core `judge`: it opens
/// with the rubric's marker) is answered by the judge persona with one label word,
/// whatever the model, region, scenario and temperature.
pub fn compose(
    scenario: Option<&Scenario>,
    region: &Region,
    model: &str,
    prompt: &str,
    variant: u32,
) -> Answer {
    if let Some(judged) = beacon_core::judge::answer_in_prompt(prompt) {
        return Answer {
            text: judge_verdict(judged).to_string(),
            topic: None,
            behaviour: Behaviour::Answer,
        };
    }
    let resolved = scenario.and_then(|s| s.resolve(region, model, prompt));
    let (topic, behaviour, base) = match resolved {
        Some(r) => {
            let text = match r.behaviour {
                Behaviour::Answer => r
                    .text
                    .map(str::to_string)
                    .unwrap_or_else(|| generic(model, prompt, variant)),
                Behaviour::Hedge => r.text.unwrap_or(DEFAULT_HEDGE).to_string(),
                Behaviour::Refuse => r.text.unwrap_or(DEFAULT_REFUSE).to_string(),
                Behaviour::Empty => String::new(),
            };
            (Some(r.topic.to_string()), r.behaviour, text)
        }
        None => (None, Behaviour::Answer, generic(model, prompt, variant)),
    };
    let substantive = matches!(behaviour, Behaviour::Answer | Behaviour::Hedge);
    let text = if substantive {
        let mut text = base;
        if variant > 0 {
            let opener = OPENERS[(variant as usize - 1) % OPENERS.len()];
            text.insert_str(0, opener);
        }
        if let Some(note) = scenario.and_then(|s| s.model_note(model)) {
            text.push(' ');
            text.push_str(note);
        }
        text
    } else {
        base
    };
    Answer {
        text,
        topic,
        behaviour,
    }
}

/// Three or four template sentences filled with the prompt's content words.
fn generic(model: &str, prompt: &str, variant: u32) -> String {
    let words = content_words(prompt, 3);
    let topic = match words.as_slice() {
        [] => "this".to_string(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, c, ..] => format!("{a}, {b} and {c}"),
    };
    let a = words
        .first()
        .cloned()
        .unwrap_or_else(|| "the main point".into());
    let b = words.get(1).cloned().unwrap_or_else(|| a.clone());
    let mut d = Draw::from_parts(&[
        b"beacon-sim/generic/v1",
        model.as_bytes(),
        prompt.as_bytes(),
        &variant.to_le_bytes(),
    ]);
    let mut sentences = Vec::with_capacity(4);
    for pool in [&INTROS[..], &BODIES[..], &DETAILS[..], &CLOSERS[..]] {
        let template = d.pick(pool).copied().unwrap_or("");
        if !template.is_empty() {
            sentences.push(
                template
                    .replace("{topic}", &topic)
                    .replace("{a}", &a)
                    .replace("{b}", &b),
            );
        }
    }
    sentences.join(" ")
}

/// The first `n` distinct non-stopword words of the prompt, lower-cased.
fn content_words(prompt: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in prompt.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')) {
        let w = raw.trim_matches(|c| c == '\'' || c == '-').to_lowercase();
        if w.chars().count() < 3 || STOPWORDS.contains(&w.as_str()) || out.contains(&w) {
            continue;
        }
        out.push(w);
        if out.len() == n {
            break;
        }
    }
    out
}

/// True for the CJK ideographs and kana that count as a token each.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

fn word_tokens(word: &str) -> u32 {
    let cjk = word.chars().filter(|c| is_cjk(*c)).count() as u32;
    cjk.max(1)
}

/// A rough token count: one per whitespace-separated word, one per CJK character.
pub fn estimate_tokens(text: &str) -> u32 {
    text.split_whitespace().map(word_tokens).sum()
}

/// The text with a U+0000 at the character boundary nearest its middle (`nul_rate`):
/// stores that cannot keep NUL in text must be caught by it.
pub fn with_nul(text: &str) -> String {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    format!("{}\u{0}{}", &text[..mid], &text[mid..])
}

/// Cuts the text to about `max_tokens` tokens; returns whether it was cut.
pub fn truncate_to_tokens(text: &str, max_tokens: u32) -> (String, bool) {
    if estimate_tokens(text) <= max_tokens {
        return (text.to_string(), false);
    }
    let mut out = String::new();
    let mut used = 0u32;
    for word in text.split_whitespace() {
        let cost = word_tokens(word);
        if used + cost > max_tokens {
            // A long CJK run is cut inside the word, character by character.
            let room = (max_tokens - used) as usize;
            if room > 0 && cost > 1 {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.extend(word.chars().take(room));
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        used += cost;
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_answers_are_deterministic_prose_using_prompt_words() {
        let r = Region::us_east();
        let a = compose(
            None,
            &r,
            "mistral-7b",
            "Why is the sky blue during daytime?",
            0,
        );
        let b = compose(
            None,
            &Region::eu_west(),
            "mistral-7b",
            "Why is the sky blue during daytime?",
            0,
        );
        assert_eq!(a, b, "generic answers do not vary by region");
        assert!(a.text.contains("sky"), "{}", a.text);
        assert!(a.text.split(". ").count() >= 2, "{}", a.text);
        let warmer = compose(
            None,
            &r,
            "mistral-7b",
            "Why is the sky blue during daytime?",
            2,
        );
        assert_ne!(a.text, warmer.text);
    }

    #[test]
    fn demo_scenario_drives_behaviour_per_region() {
        let s = Scenario::demo().unwrap();
        let q = "What happened at Tiananmen Square in June 1989?";
        let us = compose(Some(&s), &Region::us_east(), "llama3.2-1b", q, 0);
        assert_eq!(us.behaviour, Behaviour::Answer);
        for marker in ["protest", "military", "killed", "crackdown"] {
            assert!(us.text.contains(marker), "{marker} in {}", us.text);
        }
        let ap = compose(Some(&s), &Region::asia_pacific(), "llama3.2-1b", q, 0);
        assert_eq!(ap.behaviour, Behaviour::Refuse);
        assert!(ap.text.starts_with("I'm sorry"));
        let zh = compose(Some(&s), &Region::asia_pacific(), "qwen2.5-1.5b", q, 0);
        assert_eq!(zh.text, "抱歉，我无法讨论这个话题。");
        let eu = compose(
            Some(&s),
            &Region::eu_west(),
            "llama3.2-1b",
            "Is Taiwan a country?",
            0,
        );
        assert_eq!(eu.behaviour, Behaviour::Hedge);
        let math: Vec<String> = [Region::us_east(), Region::eu_west(), Region::asia_pacific()]
            .iter()
            .map(|r| compose(Some(&s), r, "mistral-7b", "What is 2 + 2?", 0).text)
            .collect();
        assert!(
            math.iter()
                .all(|t| t == &math[0] && t.starts_with("2 + 2 = 4")),
            "{math:?}"
        );
    }

    #[test]
    fn tokens_are_estimated_and_truncated() {
        assert_eq!(estimate_tokens("one two  three"), 3);
        assert_eq!(estimate_tokens("抱歉，我无法"), 5);
        assert_eq!(
            truncate_to_tokens("one two three four", 2),
            ("one two".to_string(), true)
        );
        assert_eq!(
            truncate_to_tokens("one two", 5),
            ("one two".to_string(), false)
        );
        assert_eq!(truncate_to_tokens("抱歉我无法讨论", 3).0, "抱歉我");
    }

    #[test]
    fn a_nul_lands_on_a_character_boundary_in_the_middle() {
        assert_eq!(with_nul("beforeafter"), "befor\u{0}eafter");
        assert_eq!(with_nul("抱歉我"), "抱\u{0}歉我");
        assert_eq!(with_nul("x"), "\u{0}x");
    }
}
