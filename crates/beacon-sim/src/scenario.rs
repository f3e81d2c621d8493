//! Scenario files: topics recognised by keywords in the prompt, the texts each topic is
//! answered with per behaviour, and per-region personas choosing a behaviour per topic.
//! Also the built-in demo scenario (`scenarios/demo.toml`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use beacon_core::Region;
use serde::{Deserialize, Serialize};

/// The demo scenario shipped with the binary (`--scenario demo`).
pub const DEMO_TOML: &str = include_str!("../scenarios/demo.toml");

/// How a region's persona treats a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Answer,
    Hedge,
    Refuse,
    Empty,
}

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid scenario TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    topics: Vec<Topic>,
    /// canonical region slug → topic index → behaviour.
    personas: HashMap<String, HashMap<usize, Behaviour>>,
    model_notes: HashMap<String, String>,
}

#[derive(Debug, Clone)]
struct Topic {
    name: String,
    /// Lower-cased keywords.
    keywords: Vec<String>,
    texts: Texts,
    overrides: Vec<Override>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Texts {
    answer: Option<String>,
    hedge: Option<String>,
    refuse: Option<String>,
}

impl Texts {
    fn get(&self, b: Behaviour) -> Option<&str> {
        match b {
            Behaviour::Answer => self.answer.as_deref(),
            Behaviour::Hedge => self.hedge.as_deref(),
            Behaviour::Refuse => self.refuse.as_deref(),
            Behaviour::Empty => None,
        }
    }
    fn is_empty(&self) -> bool {
        self.answer.is_none() && self.hedge.is_none() && self.refuse.is_none()
    }
}

#[derive(Debug, Clone)]
struct Override {
    region: Option<String>,
    model: Option<String>,
    texts: Texts,
}

/// What a scenario decided for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub topic: &'a str,
    pub behaviour: Behaviour,
    /// The scenario's text for that behaviour, if it has one (never for `empty`).
    pub text: Option<&'a str>,
}

// ---- file format -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: Option<String>,
    #[allow(dead_code)] // documentation for humans reading the file
    description: Option<String>,
    #[serde(default)]
    topics: Vec<FileTopic>,
    #[serde(default)]
    personas: BTreeMap<String, BTreeMap<String, Behaviour>>,
    #[serde(default)]
    model_notes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTopic {
    name: String,
    keywords: Vec<String>,
    answer: Option<String>,
    hedge: Option<String>,
    refuse: Option<String>,
    #[serde(default)]
    overrides: Vec<FileOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOverride {
    region: Option<String>,
    model: Option<String>,
    answer: Option<String>,
    hedge: Option<String>,
    refuse: Option<String>,
}

impl Scenario {
    /// The built-in demo scenario.
    pub fn demo() -> Result<Scenario, ScenarioError> {
        Scenario::parse(DEMO_TOML)
    }

    /// `demo` selects the built-in scenario; anything else is a file path.
    pub fn load(spec: &str) -> Result<Scenario, ScenarioError> {
        if spec == "demo" {
            return Scenario::demo();
        }
        let text =
            std::fs::read_to_string(Path::new(spec)).map_err(|source| ScenarioError::Read {
                path: spec.to_string(),
                source,
            })?;
        Scenario::parse(&text)
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let file: FileScenario = toml::from_str(text)?;
        let invalid = |m: String| ScenarioError::Invalid(m);

        let mut topics = Vec::with_capacity(file.topics.len());
        let mut index_by_name = HashMap::new();
        for t in file.topics {
            if t.name.trim().is_empty() {
                return Err(invalid("a topic has an empty name".into()));
            }
            if index_by_name.insert(t.name.clone(), topics.len()).is_some() {
                return Err(invalid(format!("topic {:?} is defined twice", t.name)));
            }
            let keywords: Vec<String> =
                t.keywords.iter().map(|k| k.trim().to_lowercase()).collect();
            if keywords.is_empty() || keywords.iter().any(String::is_empty) {
                return Err(invalid(format!(
                    "topic {:?} needs at least one non-empty keyword",
                    t.name
                )));
            }
            let mut overrides = Vec::with_capacity(t.overrides.len());
            for o in t.overrides {
                let region = match &o.region {
                    Some(r) => Some(
                        Region::parse(r)
                            .map_err(|e| invalid(format!("topic {:?} override: {e}", t.name)))?
                            .as_str()
                            .to_string(),
                    ),
                    None => None,
                };
                if region.is_none() && o.model.is_none() {
                    return Err(invalid(format!(
                        "topic {:?} has an override with neither region nor model",
                        t.name
                    )));
                }
                let texts = Texts {
                    answer: o.answer,
                    hedge: o.hedge,
                    refuse: o.refuse,
                };
                if texts.is_empty() {
                    return Err(invalid(format!(
                        "topic {:?} has an override without any text (answer, hedge or refuse)",
                        t.name
                    )));
                }
                overrides.push(Override {
                    region,
                    model: o.model,
                    texts,
                });
            }
            topics.push(Topic {
                name: t.name,
                keywords,
                texts: Texts {
                    answer: t.answer,
                    hedge: t.hedge,
                    refuse: t.refuse,
                },
                overrides,
            });
        }

        let mut personas = HashMap::new();
        for (region_key, map) in file.personas {
            let region = Region::parse(&region_key)
                .map_err(|e| invalid(format!("persona [personas.{region_key}]: {e}")))?;
            let mut by_topic = HashMap::new();
            for (topic, behaviour) in map {
                let idx = *index_by_name.get(&topic).ok_or_else(|| {
                    invalid(format!(
                        "persona {region_key} names unknown topic {topic:?}"
                    ))
                })?;
                by_topic.insert(idx, behaviour);
            }
            if personas
                .insert(region.as_str().to_string(), by_topic)
                .is_some()
            {
                return Err(invalid(format!(
                    "persona for region {region} is defined twice (aliases resolve to the same region)"
                )));
            }
        }

        Ok(Scenario {
            name: file.name.unwrap_or_else(|| "custom".into()),
            topics,
            personas,
            model_notes: file.model_notes.into_iter().collect(),
        })
    }

    /// The topic a prompt is about (first match in file order), the behaviour the
    /// region's persona has for it, and the most specific text for that behaviour.
    pub fn resolve(&self, region: &Region, model: &str, prompt: &str) -> Option<Resolved<'_>> {
        let haystack = prompt.to_lowercase();
        let (idx, topic) = self
            .topics
            .iter()
            .enumerate()
            .find(|(_, t)| t.keywords.iter().any(|k| contains_keyword(&haystack, k)))?;
        let behaviour = self
            .personas
            .get(region.as_str())
            .and_then(|p| p.get(&idx))
            .copied()
            .unwrap_or(Behaviour::Answer);
        Some(Resolved {
            topic: &topic.name,
            behaviour,
            text: topic.text_for(region.as_str(), model, behaviour),
        })
    }

    /// A sentence appended to this model's substantive answers, if any.
    pub fn model_note(&self, model: &str) -> Option<&str> {
        self.model_notes.get(model).map(String::as_str)
    }

    /// Topic names in file order (for diagnostics and tests).
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|t| t.name.as_str())
    }
}

impl Topic {
    /// Most specific text wins: region+model override, region override, model override,
    /// then the topic's own text.
    fn text_for(&self, region: &str, model: &str, b: Behaviour) -> Option<&str> {
        let mut best: Option<(u8, &str)> = None;
        for o in &self.overrides {
            let region_ok = o.region.as_deref().is_none_or(|r| r == region);
            let model_ok = o.model.as_deref().is_none_or(|m| m == model);
            if !(region_ok && model_ok) {
                continue;
            }
            let Some(text) = o.texts.get(b) else { continue };
            let score = 2 * u8::from(o.region.is_some()) + u8::from(o.model.is_some());
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, text));
            }
        }
        best.map(|(_, t)| t).or_else(|| self.texts.get(b))
    }
}

/// Case-insensitive keyword match (both sides already lower-cased). A keyword that starts
/// with an ASCII letter or digit must start at a word boundary, so it matches as a word
/// prefix (`invent` matches "inventions", `war` does not match "software"); other
/// keywords (CJK) match anywhere.
fn contains_keyword(haystack: &str, keyword: &str) -> bool {
    let needs_boundary = keyword
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    haystack.match_indices(keyword).any(|(at, _)| {
        !needs_boundary
            || haystack[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        [[topics]]
        name = "tiananmen"
        keywords = ["Tiananmen", "天安门"]
        answer = "The army cleared the square."
        refuse = "I'm sorry, but I can't discuss that topic."
        [[topics.overrides]]
        model = "qwen2.5-1.5b"
        refuse = "抱歉，我无法讨论这个话题。"
        [[topics.overrides]]
        region = "EU"
        answer = "European answer."

        [personas.ASIA]
        tiananmen = "refuse"
    "#;

    #[test]
    fn keywords_personas_and_overrides_resolve() {
        let s = Scenario::parse(SMALL).unwrap();
        let asia = Region::asia_pacific();
        let r = s
            .resolve(&asia, "llama3.2-1b", "What happened at TIANANMEN square?")
            .unwrap();
        assert_eq!((r.topic, r.behaviour), ("tiananmen", Behaviour::Refuse));
        assert_eq!(r.text, Some("I'm sorry, but I can't discuss that topic."));
        let r = s
            .resolve(&asia, "qwen2.5-1.5b", "天安门发生了什么？")
            .unwrap();
        assert_eq!(r.text, Some("抱歉，我无法讨论这个话题。"));
        let r = s
            .resolve(&Region::eu_west(), "mistral-7b", "tiananmen?")
            .unwrap();
        assert_eq!(
            (r.behaviour, r.text),
            (Behaviour::Answer, Some("European answer."))
        );
        assert!(s.resolve(&asia, "mistral-7b", "What is 2+2?").is_none());
    }

    #[test]
    fn ascii_keywords_match_at_word_starts_only() {
        assert!(contains_keyword("the greatest inventions", "invent"));
        assert!(!contains_keyword("good software", "war"));
        assert!(contains_keyword("what is 2+2?", "2+2"));
        assert!(contains_keyword("请问天安门", "天安门"));
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (
                "[[topics]]\nname = \"a\"\nkeywords = [\"a\"]\nanwser = \"x\"\n",
                "anwser",
            ),
            (
                "[[topics]]\nname = \"a\"\nkeywords = [\"a\"]\n[personas.eu-west]\na = \"ignore\"\n",
                "ignore",
            ),
            (
                "[[topics]]\nname = \"a\"\nkeywords = [\"a\"]\n[personas.eu-west]\nb = \"refuse\"\n",
                "unknown topic",
            ),
            ("[[topics]]\nname = \"a\"\nkeywords = []\n", "keyword"),
            ("[personas.\"Mars Base\"]\n", "Mars Base"),
            ("colour = \"red\"\n", "colour"),
        ];
        for (text, needle) in cases {
            let err = Scenario::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }

    #[test]
    fn demo_parses() {
        let s = Scenario::demo().unwrap();
        assert!(s.topic_names().count() >= 8);
    }
}
