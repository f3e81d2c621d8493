//! Region identity: canonical slugs, the aliases older clients send, and strict parsing.
//!
//! The previous deployment stored `EU` in one place and `eu-west` in another and lost
//! answers in the join. Here every spelling is resolved once, at the edge, into a
//! [`Region`] that only ever holds a canonical lower-case slug. An unknown spelling is
//! an error, never a silent default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The three regions Beacon was built to compare.
pub const US_EAST: &str = "us-east";
pub const EU_WEST: &str = "eu-west";
pub const ASIA_PACIFIC: &str = "asia-pacific";

/// Longest slug accepted; region names are labels, not prose.
const MAX_SLUG_LEN: usize = 32;

/// A canonical region slug (`us-east`, `eu-west`, `asia-pacific`, or another lower-case
/// slug a router serves).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

/// Why a region spelling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown region {input:?}: use us-east, eu-west, asia-pacific (or US, EU, ASIA) or a lower-case slug"
)]
pub struct RegionError {
    pub input: String,
}

impl Region {
    /// Resolves an alias or canonical name. Aliases are case-insensitive and trimmed;
    /// anything else must already be a valid lower-case slug (`[a-z0-9]+(-[a-z0-9]+)*`).
    pub fn parse(input: &str) -> Result<Region, RegionError> {
        let trimmed = input.trim();
        if let Some(canonical) = alias(trimmed) {
            return Ok(Region(canonical.to_string()));
        }
        if is_slug(trimmed) {
            return Ok(Region(trimmed.to_string()));
        }
        Err(RegionError {
            input: input.chars().take(64).collect(),
        })
    }

    /// Resolves only the aliases and the three built-in regions: what a client may send
    /// before anyone has asked a router which other slugs exist.
    pub fn parse_known(input: &str) -> Result<Region, RegionError> {
        alias(input.trim())
            .map(|c| Region(c.to_string()))
            .ok_or_else(|| RegionError {
                input: input.chars().take(64).collect(),
            })
    }

    pub fn us_east() -> Region {
        Region(US_EAST.to_string())
    }
    pub fn eu_west() -> Region {
        Region(EU_WEST.to_string())
    }
    pub fn asia_pacific() -> Region {
        Region(ASIA_PACIFIC.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short code the portal shows (`US`, `EU`, `ASIA`), or the slug upper-cased.
    pub fn portal_code(&self) -> String {
        match self.0.as_str() {
            US_EAST => "US".to_string(),
            EU_WEST => "EU".to_string(),
            ASIA_PACIFIC => "ASIA".to_string(),
            other => other.to_ascii_uppercase(),
        }
    }
}

/// Maps the aliases of runner.md (and the canonical names themselves) to a canonical slug.
fn alias(input: &str) -> Option<&'static str> {
    let lower = input.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "us-east" | "us" | "usa" | "na" | "united states" => US_EAST,
        "eu-west" | "eu" | "europe" => EU_WEST,
        "asia-pacific" | "asia" | "apac" | "ap" | "asia-southeast" | "asia pacific" => ASIA_PACIFIC,
        _ => return None,
    };
    Some(canonical)
}

/// A slug is lower-case ASCII letters and digits in dash-separated words.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::parse(s)
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Region::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_canonical_slugs() {
        for (input, want) in [
            ("US", US_EAST),
            (" usa ", US_EAST),
            ("NA", US_EAST),
            ("United States", US_EAST),
            ("us-east", US_EAST),
            ("EU", EU_WEST),
            ("Europe", EU_WEST),
            ("EU-WEST", EU_WEST),
            ("ASIA", ASIA_PACIFIC),
            ("apac", ASIA_PACIFIC),
            ("AP", ASIA_PACIFIC),
            ("asia-southeast", ASIA_PACIFIC),
            ("Asia Pacific", ASIA_PACIFIC),
        ] {
            assert_eq!(
                Region::parse(input).map(|r| r.0),
                Ok(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn other_slugs_are_kept_and_bad_spellings_refused() {
        assert_eq!(
            Region::parse("me-central").map(|r| r.0),
            Ok("me-central".into())
        );
        for bad in [
            "",
            "  ",
            "Mars Base",
            "eu_west",
            "-eu",
            "eu-",
            "a--b",
            "Me-Central",
            "x".repeat(40).as_str(),
        ] {
            assert!(Region::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Region::parse_known("me-central").is_err());
    }

    #[test]
    fn serde_round_trip_canonicalises() {
        let r: Region = serde_json::from_str("\"EU\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&r).ok(), Some("\"eu-west\"".into()));
        assert!(serde_json::from_str::<Region>("\"nowhere land\"").is_err());
        assert_eq!(Region::eu_west().portal_code(), "EU");
    }
}
