//! The question catalogue: the ids a job spec may name, their texts, categories and
//! analysis markers. Shipped as `data/questions.toml` and compiled in, so every
//! component (runner, CLI, simulator scenarios) reads the same list without I/O.

use serde::Deserialize;

use crate::ids::QuestionId;

const BUILTIN: &str = include_str!("../data/questions.toml");

/// One question a job can ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: QuestionId,
    pub text: String,
    pub category: String,
    /// Control questions (`false`) should be answered alike everywhere; the analysis
    /// contrasts them with the sensitive ones.
    pub sensitive: bool,
    pub markers: Vec<String>,
}

/// Why a catalogue file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("catalogue entry {index}: {reason}")]
    Entry { index: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    questions: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    category: String,
    text: String,
    #[serde(default = "default_sensitive")]
    sensitive: bool,
    #[serde(default)]
    markers: Vec<String>,
}

fn default_sensitive() -> bool {
    true
}

/// The set of known questions, in file order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    questions: Vec<Question>,
}

impl Catalogue {
    /// The catalogue compiled into Beacon.
    pub fn builtin() -> Catalogue {
        // The file is part of this crate and covered by a test; an error here is a build bug.
        Catalogue::from_toml(BUILTIN).unwrap_or_else(|_| Catalogue { questions: vec![] })
    }

    /// Reads a catalogue file (an operator's own questions).
    pub fn from_toml(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: File = toml::from_str(text)?;
        let mut questions: Vec<Question> = Vec::with_capacity(file.questions.len());
        for (index, e) in file.questions.into_iter().enumerate() {
            let entry_err = |reason: String| CatalogueError::Entry { index, reason };
            let id = QuestionId::parse(&e.id).map_err(|err| entry_err(err.to_string()))?;
            if questions.iter().any(|q| q.id == id) {
                return Err(entry_err(format!("duplicate id {id}")));
            }
            if e.text.trim().is_empty() {
                return Err(entry_err(format!("{id} has an empty text")));
            }
            questions.push(Question {
                id,
                text: e.text,
                category: e.category,
                sensitive: e.sensitive,
                markers: e.markers,
            });
        }
        Ok(Catalogue { questions })
    }

    pub fn get(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id.as_str() == id)
    }

    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    /// Categories in first-seen order, each with its questions.
    pub fn by_category(&self) -> Vec<(&str, Vec<&Question>)> {
        let mut out: Vec<(&str, Vec<&Question>)> = Vec::new();
        for q in &self.questions {
            match out.iter_mut().find(|(c, _)| *c == q.category) {
                Some((_, list)) => list.push(q),
                None => out.push((q.category.as_str(), vec![q])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_portal_ids() {
        let c = Catalogue::from_toml(BUILTIN).unwrap();
        for id in [
            "math_basic",
            "geography_basic",
            "identity_basic",
            "tiananmen_neutral",
            "taiwan_status",
            "hongkong_2019",
            "greatest_invention",
            "greatest_leader",
        ] {
            assert!(c.get(id).is_some(), "{id}");
        }
        assert!(!c.get("math_basic").unwrap().sensitive);
        assert!(c.get("taiwan_status").unwrap().sensitive);
        let cats: Vec<&str> = c.by_category().iter().map(|(c, _)| *c).collect();
        assert_eq!(
            cats,
            [
                "control_questions",
                "bias_detection",
                "cultural_perspective"
            ]
        );
        assert_eq!(Catalogue::builtin().questions().len(), 8);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(
            Catalogue::from_toml("questions = [{id = \"a/b\", category = \"c\", text = \"t\"}]")
                .is_err()
        );
        assert!(
            Catalogue::from_toml(
                "questions = [{id = \"a\", category = \"c\", text = \"t\", colour = 1}]"
            )
            .is_err()
        );
        let dup = "questions = [{id = \"a\", category = \"c\", text = \"t\"}, {id = \"a\", category = \"c\", text = \"u\"}]";
        assert!(Catalogue::from_toml(dup).is_err());
    }
}
