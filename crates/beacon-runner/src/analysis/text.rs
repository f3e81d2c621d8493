//! Text similarity for the analysis: tokens (lower-cased words; CJK text as character
//! bigrams), TF-IDF weights over the job's answers, and cosine similarity in [0, 1].
//! docs/analysis.md gives the formulas and a worked example.

use std::collections::HashMap;

/// Frequent English function words carry no narrative; dropping them keeps two answers
/// from looking alike only because both say "the" and "of".
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "has", "have",
    "in", "is", "it", "its", "of", "on", "or", "that", "the", "their", "there", "this", "to",
    "was", "were", "which", "with",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// Lower-cased word tokens; a run of CJK characters becomes its character bigrams (a
/// single CJK character stays a unigram), since CJK text has no spaces between words.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            if !STOPWORDS.contains(&word.as_str()) {
                out.push(std::mem::take(word));
            } else {
                word.clear();
            }
        }
    };
    let flush_cjk = |cjk: &mut Vec<char>, out: &mut Vec<String>| {
        match cjk.len() {
            0 => {}
            1 => out.push(cjk[0].to_string()),
            _ => out.extend(cjk.windows(2).map(|w| w.iter().collect::<String>())),
        }
        cjk.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

/// A sparse TF-IDF vector.
pub type Vector = HashMap<String, f64>;

/// Document frequencies of a corpus, gathered one document at a time so that the
/// report of a big job never holds every answer's tokens at once: the first pass over
/// the answers fills it, the second turns each group's answers into vectors.
#[derive(Debug, Default)]
pub struct Vocabulary {
    df: HashMap<String, u32>,
    docs: u32,
}

impl Vocabulary {
    /// Counts each distinct token of `doc` once.
    pub fn add(&mut self, doc: &[String]) {
        self.docs += 1;
        let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            match self.df.get_mut(t) {
                Some(n) => *n += 1,
                None => {
                    self.df.insert(t.to_string(), 1);
                }
            }
        }
    }

    /// The TF-IDF vector of `doc` against this corpus: tf = count / tokens in the
    /// document; idf = ln((1 + N) / (1 + df)) + 1 (smoothed, so a term in every
    /// document still weighs 1).
    pub fn vector(&self, doc: &[String]) -> Vector {
        let n = f64::from(self.docs);
        let len = doc.len().max(1) as f64;
        let mut v: Vector = HashMap::new();
        for t in doc {
            *v.entry(t.clone()).or_default() += 1.0 / len;
        }
        for (t, w) in v.iter_mut() {
            let df = f64::from(self.df.get(t.as_str()).copied().unwrap_or(0));
            *w *= ((1.0 + n) / (1.0 + df)).ln() + 1.0;
        }
        v
    }
}

/// TF-IDF vectors of `docs` (see [`Vocabulary::vector`]).
pub fn tfidf(docs: &[Vec<String>]) -> Vec<Vector> {
    let mut vocabulary = Vocabulary::default();
    for doc in docs {
        vocabulary.add(doc);
    }
    docs.iter().map(|doc| vocabulary.vector(doc)).collect()
}

/// Cosine similarity; 0 when either vector is empty. Weights are non-negative, so the
/// result is in [0, 1].
pub fn cosine(a: &Vector, b: &Vector) -> f64 {
    let dot: f64 = a.iter().filter_map(|(t, w)| b.get(t).map(|x| w * x)).sum();
    let na: f64 = a.values().map(|w| w * w).sum::<f64>().sqrt();
    let nb: f64 = b.values().map(|w| w * w).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na * nb)).clamp(0.0, 1.0)
    }
}

/// Whether `marker` occurs in `text` (case-insensitive; whole words for ASCII words,
/// substring for anything else, such as CJK).
pub fn contains_marker(text: &str, marker: &str) -> bool {
    let t = text.to_lowercase();
    let m = marker.to_lowercase();
    if m.is_empty() {
        return false;
    }
    if !m
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '\'' || c == '-')
    {
        return t.contains(&m);
    }
    let bytes = t.as_bytes();
    t.match_indices(&m).any(|(i, _)| {
        let before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let end = i + m.len();
        let after = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        before && after
    })
}

/// About `width` characters of `text` around the first occurrence of `marker`.
pub fn snippet(text: &str, marker: &str, width: usize) -> String {
    let lower = text.to_lowercase();
    let Some(byte_pos) = lower.find(&marker.to_lowercase()) else {
        return text.chars().take(width).collect();
    };
    // Map the byte offset in the lower-cased text to a character offset (lower-casing
    // can change byte lengths, never the number of characters for these scripts).
    let char_pos = lower[..byte_pos].chars().count();
    let start = char_pos.saturating_sub(width / 2);
    let s: String = text.chars().skip(start).take(width).collect();
    let prefix = if start > 0 { "…" } else { "" };
    let suffix = if start + width < text.chars().count() {
        "…"
    } else {
        ""
    };
    format!("{prefix}{}{suffix}", s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_words_and_cjk_bigrams() {
        assert_eq!(
            tokenize("The Army cleared the square, in 1989."),
            ["army", "cleared", "square", "1989"]
        );
        assert_eq!(tokenize("天安门广场"), ["天安", "安门", "门广", "广场"]);
        assert_eq!(tokenize("在 1989 年"), ["在", "1989", "年"]);
    }

    #[test]
    fn tfidf_and_cosine_by_hand() {
        // Documents: [a b], [a c]. N = 2; df(a) = 2, df(b) = df(c) = 1.
        // idf(a) = ln(3/3) + 1 = 1; idf(b) = idf(c) = ln(3/2) + 1 = 1.405465.
        // tf = 1/2 each. v1 = {a: .5, b: .702733}, v2 = {a: .5, c: .702733}.
        // cos = .25 / (.5² + .702733²) = .25 / .743834 = 0.336097.
        let docs = vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["a".to_string(), "c".to_string()],
        ];
        let v = tfidf(&docs);
        assert!((v[0]["b"] - 0.702733).abs() < 1e-6, "{:?}", v[0]);
        assert!((cosine(&v[0], &v[1]) - 0.336097).abs() < 1e-6);
        assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&v[0], &Vector::new()), 0.0);
    }

    #[test]
    fn markers_match_whole_words_and_cjk_substrings() {
        assert!(contains_marker("Troops KILLED protesters", "killed"));
        assert!(!contains_marker("unkilled", "killed"));
        assert!(contains_marker("It is independent.", "independent"));
        assert!(contains_marker(
            "the People's Republic",
            "People's Republic"
        ));
        assert!(contains_marker("军队在天安门清场", "天安门"));
        assert!(!contains_marker("anything", ""));
        let s = snippet(
            "In June 1989 the army opened fire and many were killed near the square.",
            "killed",
            30,
        );
        assert!(s.contains("killed") && s.starts_with('…'), "{s}");
    }
}
