//! `[server]`, the connection limits both services' config files share: timeouts,
//! the cap on open connections, and the URI and head sizes refused in JSON.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::{ConfigError, config_error};

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    beacon_core::duration::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// hyper's own request-line limit (it answers an empty 414 past it); ours is below.
const HYPER_MAX_URI: usize = 65_534;
/// Comfortably below hyper's read buffer (about 400 KiB, an empty 431 past it).
const MAX_HEAD_LIMIT: usize = 256 << 10;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Time for a connection's first request head to arrive, from accept.
    #[serde(deserialize_with = "de_duration")]
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body (reset by each piece).
    #[serde(deserialize_with = "de_duration")]
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request (this also
    /// bounds the head of every request after the first).
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Open client connections at most; more are answered 503 and closed. Capped at
    /// start below the process's descriptor limit.
    pub max_connections: usize,
    /// Longest request URI (path and query); longer is refused 414.
    pub max_uri_bytes: usize,
    /// Largest request head (request line and headers); larger is refused 431.
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 64 << 10,
        }
    }
}

impl ServerConfig {
    /// Checks the values, naming the key (`server.…`) at fault.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (key, d) in [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.body_read_timeout", self.body_read_timeout),
            ("server.idle_timeout", self.idle_timeout),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                return Err(config_error(key, "must be between 100ms and 1h"));
            }
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(config_error(
                "server.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if !(256..HYPER_MAX_URI - 64).contains(&self.max_uri_bytes) {
            return Err(config_error(
                "server.max_uri_bytes",
                format!("must be between 256 and {}", HYPER_MAX_URI - 65),
            ));
        }
        if !(1024..=MAX_HEAD_LIMIT).contains(&self.max_header_bytes)
            || self.max_header_bytes < self.max_uri_bytes
        {
            return Err(config_error(
                "server.max_header_bytes",
                format!("must be between max_uri_bytes (and 1024) and {MAX_HEAD_LIMIT}"),
            ));
        }
        Ok(())
    }

    /// One line for the services' configuration summaries.
    pub fn summary(&self) -> String {
        format!(
            "header_read_timeout={:?} body_read_timeout={:?} idle_timeout={:?} max_connections={}",
            self.header_read_timeout,
            self.body_read_timeout,
            self.idle_timeout,
            self.max_connections
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, String> {
        let c: ServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check().map_err(|e| e.key)?;
        Ok(c)
    }

    #[test]
    fn defaults_and_durations() {
        let c = parse("").unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, 4096);
        let c = parse("idle_timeout = \"2s\"\nmax_connections = 8").unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(2));
        assert_eq!(c.max_connections, 8);
    }

    #[test]
    fn bad_values_name_the_key() {
        assert_eq!(
            parse("max_connections = 0").unwrap_err(),
            "server.max_connections"
        );
        assert_eq!(
            parse("body_read_timeout = \"0s\"").unwrap_err(),
            "server.body_read_timeout"
        );
        assert_eq!(
            parse("max_uri_bytes = 70000").unwrap_err(),
            "server.max_uri_bytes"
        );
        assert!(parse("idle_timeout = \"soon\"").is_err());
        assert!(
            parse("max_conections = 3").is_err(),
            "unknown keys are refused"
        );
    }
}
