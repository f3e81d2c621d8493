//! Identifiers that end up in URLs, file names and unique keys: job, question and model
//! ids. Each is checked once where it enters, so no path, control or markup character
//! ever reaches a route, a log line or a report.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: use 1-128 characters from A-Z a-z 0-9 . _ : -")]
pub struct IdError {
    pub kind: &'static str,
    pub input: String,
}

fn check(kind: &'static str, s: &str) -> Result<(), IdError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(IdError {
            kind,
            input: s.chars().take(64).collect(),
        })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check($kind, s).map(|()| Self(s.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A job id (the spec's `id`), e.g. `bias-detection-1759330371966`.
    JobId,
    "job id"
);
id_type!(
    /// A question id from the catalogue or an inline question, e.g. `tiananmen_neutral`.
    QuestionId,
    "question id"
);
id_type!(
    /// A model id as routers know it, e.g. `llama3.2-1b`.
    ModelId,
    "model id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_plain_names_and_refuse_paths_and_controls() {
        assert!(JobId::parse("bias-detection-1759330371966").is_ok());
        assert!(ModelId::parse("qwen2.5-1.5b").is_ok());
        assert!(QuestionId::parse("q:custom_1").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            "a\nb",
            "<script>",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(JobId::parse(bad).is_err(), "{bad:?}");
        }
        let e = ModelId::parse("../etc").unwrap_err();
        assert_eq!(e.kind, "model id");
    }
}
