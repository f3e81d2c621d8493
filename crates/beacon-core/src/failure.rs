//! The failure object: the one shape every failure in Beacon carries (router.md), and
//! the closed set of error codes with their HTTP status and transience.
//!
//! The previous deployment stored executions with null output and an empty provider
//! id. Here a failure cannot be built without a code, a stage and a message, and the
//! provider, region and HTTP status travel with it when they are known.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an inference did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    UnknownRegion,
    NoProviderForModel,
    NoHealthyProvider,
    Overloaded,
    ProviderHttpError,
    ProviderConnectError,
    ProviderBadResponse,
    ProviderReportedFailure,
    ProviderTimeout,
    /// The provider's answer was larger than the router reads (`max_response_bytes`):
    /// cut off unread rather than buffered, and not retried (it would be bought again).
    ProviderResponseTooLarge,
    /// The runner could not reach the router (connect error, breaker open).
    RouterUnreachable,
    /// The router did not answer within the runner's deadline.
    RouterTimeout,
    /// The router answered something that is not the `/inference` shape.
    RouterBadResponse,
    /// The router's answer was larger than the runner reads, or its text larger than
    /// one execution may store.
    RouterResponseTooLarge,
    /// The router refused the runner's inference token (HTTP 401): a configuration
    /// fact (`ROUTER_TOKEN`), never retried; the router bought nothing for the call.
    RouterUnauthorized,
    /// The caller sent no inference token, or a wrong one (the router's 401).
    Unauthorized,
    /// A paid answer could not be stored because the database refused it (not an
    /// outage: outages are waited out). Recorded instead of the answer so the execution
    /// ends, and never bought again in a loop.
    StoreWriteFailed,
    /// The execution used up its attempts across restarts and hand-backs (a safety
    /// bound on paid calls, independent of the per-run retry budget).
    AttemptsExhausted,
    /// The job's own deadline ran out before this execution finished.
    JobTimeout,
    /// The execution was cancelled (by a user, or because the job could no longer
    /// reach its success threshold); recorded so a cancelled row still explains itself.
    Cancelled,
    /// A code this build does not know (a newer peer); kept verbatim.
    Other(String),
}

impl ErrorCode {
    const KNOWN: [ErrorCode; 21] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownRegion,
        ErrorCode::NoProviderForModel,
        ErrorCode::NoHealthyProvider,
        ErrorCode::Overloaded,
        ErrorCode::ProviderHttpError,
        ErrorCode::ProviderConnectError,
        ErrorCode::ProviderBadResponse,
        ErrorCode::ProviderReportedFailure,
        ErrorCode::ProviderTimeout,
        ErrorCode::ProviderResponseTooLarge,
        ErrorCode::RouterUnreachable,
        ErrorCode::RouterTimeout,
        ErrorCode::RouterBadResponse,
        ErrorCode::RouterResponseTooLarge,
        ErrorCode::RouterUnauthorized,
        ErrorCode::Unauthorized,
        ErrorCode::StoreWriteFailed,
        ErrorCode::AttemptsExhausted,
        ErrorCode::JobTimeout,
        ErrorCode::Cancelled,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnknownRegion => "UNKNOWN_REGION",
            ErrorCode::NoProviderForModel => "NO_PROVIDER_FOR_MODEL",
            ErrorCode::NoHealthyProvider => "NO_HEALTHY_PROVIDER",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::ProviderHttpError => "PROVIDER_HTTP_ERROR",
            ErrorCode::ProviderConnectError => "PROVIDER_CONNECT_ERROR",
            ErrorCode::ProviderBadResponse => "PROVIDER_BAD_RESPONSE",
            ErrorCode::ProviderReportedFailure => "PROVIDER_REPORTED_FAILURE",
            ErrorCode::ProviderTimeout => "PROVIDER_TIMEOUT",
            ErrorCode::ProviderResponseTooLarge => "PROVIDER_RESPONSE_TOO_LARGE",
            ErrorCode::RouterUnreachable => "ROUTER_UNREACHABLE",
            ErrorCode::RouterTimeout => "ROUTER_TIMEOUT",
            ErrorCode::RouterBadResponse => "ROUTER_BAD_RESPONSE",
            ErrorCode::RouterResponseTooLarge => "ROUTER_RESPONSE_TOO_LARGE",
            ErrorCode::RouterUnauthorized => "ROUTER_UNAUTHORIZED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::StoreWriteFailed => "STORE_WRITE_FAILED",
            ErrorCode::AttemptsExhausted => "ATTEMPTS_EXHAUSTED",
            ErrorCode::JobTimeout => "JOB_TIMEOUT",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> ErrorCode {
        Self::KNOWN
            .iter()
            .find(|c| c.as_str() == s)
            .cloned()
            .unwrap_or_else(|| ErrorCode::Other(s.to_string()))
    }

    /// The router's HTTP status for this code (router.md).
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::UnknownRegion => 400,
            ErrorCode::NoProviderForModel => 404,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NoHealthyProvider | ErrorCode::Overloaded => 503,
            ErrorCode::Cancelled => 409,
            ErrorCode::StoreWriteFailed | ErrorCode::AttemptsExhausted => 500,
            ErrorCode::ProviderTimeout | ErrorCode::RouterTimeout | ErrorCode::JobTimeout => 504,
            _ => 502,
        }
    }

    /// Whether trying again later can help, absent better knowledge. Request and
    /// configuration facts never are; capacity, network and provider crashes are. A
    /// failure may override this (a provider's 4xx is not transient, its 5xx is).
    pub fn default_transient(&self) -> bool {
        matches!(
            self,
            ErrorCode::NoHealthyProvider
                | ErrorCode::Overloaded
                | ErrorCode::ProviderHttpError
                | ErrorCode::ProviderConnectError
                | ErrorCode::ProviderBadResponse
                | ErrorCode::ProviderReportedFailure
                | ErrorCode::ProviderTimeout
                | ErrorCode::RouterUnreachable
                | ErrorCode::RouterTimeout
                | ErrorCode::RouterBadResponse
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::parse(&String::deserialize(d)?))
    }
}

/// In the OpenAPI documents an error code is a string: a newer peer's code is kept
/// verbatim (`Other`), so the known list is an example set, not an enum.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Why an inference did not produce an answer (router.md error codes).",
            ))
            .examples(ErrorCode::KNOWN.iter().map(|c| c.as_str()))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

/// Where on the path of a call the failure happened.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The request itself was refused before any provider was chosen.
    Validation,
    /// Choosing a provider (none serves the model, none is healthy).
    Routing,
    /// Waiting for a provider's concurrency slot.
    Queue,
    /// Opening the connection to the provider.
    Connect,
    /// Waiting for the provider's answer.
    Upstream,
    /// Reading the provider's answer.
    Response,
    /// The runner's call to the router.
    Router,
    /// The runner's scheduler (deadlines).
    Scheduler,
}

/// A failure with everything needed to explain it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub stage: Stage,
    pub message: String,
    pub transient: bool,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub provider_type: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
    /// The provider URL, credentials and query removed.
    #[serde(default)]
    pub url: Option<String>,
    /// Seconds the peer asked us to wait, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<f64>,
    pub at: DateTime<Utc>,
}

impl Failure {
    /// A failure at `stage` with the code's default transience, stamped now.
    pub fn new(code: ErrorCode, stage: Stage, message: impl Into<String>) -> Failure {
        Failure {
            transient: code.default_transient(),
            code,
            stage,
            message: message.into(),
            provider: None,
            provider_type: None,
            region: None,
            model: None,
            http_status: None,
            url: None,
            retry_after: None,
            at: Utc::now(),
        }
    }

    pub fn with_provider(mut self, name: &str, kind: &str) -> Failure {
        self.provider = Some(name.to_string());
        self.provider_type = Some(kind.to_string());
        self
    }
    pub fn with_region(mut self, region: &str) -> Failure {
        self.region = Some(region.to_string());
        self
    }
    pub fn with_model(mut self, model: &str) -> Failure {
        self.model = Some(model.to_string());
        self
    }
    pub fn with_http_status(mut self, status: u16) -> Failure {
        self.http_status = Some(status);
        self
    }
    pub fn with_url(mut self, url: &str) -> Failure {
        self.url = Some(redact_url(url));
        self
    }
    pub fn with_transient(mut self, transient: bool) -> Failure {
        self.transient = transient;
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {:?}: {}", self.code, self.stage, self.message)?;
        if let Some(p) = &self.provider {
            write!(f, " (provider {p}")?;
            if let Some(s) = self.http_status {
                write!(f, ", HTTP {s}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Removes `user:password@` and the query string (where tokens hide) from a URL.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match scheme {
        Some(s) => format!("{s}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_map_to_status() {
        for c in ErrorCode::KNOWN {
            assert_eq!(ErrorCode::parse(c.as_str()), c);
        }
        assert_eq!(
            ErrorCode::parse("SOMETHING_NEW"),
            ErrorCode::Other("SOMETHING_NEW".into())
        );
        assert_eq!(ErrorCode::NoHealthyProvider.http_status(), 503);
        assert_eq!(ErrorCode::NoProviderForModel.http_status(), 404);
        assert_eq!(ErrorCode::ProviderTimeout.http_status(), 504);
        assert_eq!(ErrorCode::ProviderHttpError.http_status(), 502);
        assert!(!ErrorCode::NoProviderForModel.default_transient());
        assert!(!ErrorCode::InvalidRequest.default_transient());
        assert!(ErrorCode::Overloaded.default_transient());
    }

    #[test]
    fn failure_serialises_with_every_field() {
        let f = Failure::new(
            ErrorCode::ProviderHttpError,
            Stage::Upstream,
            "HTTP 404: modal-http: invalid function call",
        )
        .with_provider("modal-eu-west", "modal")
        .with_region("eu-west")
        .with_http_status(404)
        .with_transient(false)
        .with_url("https://user:secret@eu.example.run/path?token=abc");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["code"], "PROVIDER_HTTP_ERROR");
        assert_eq!(v["stage"], "upstream");
        assert_eq!(v["http_status"], 404);
        assert_eq!(v["url"], "https://eu.example.run/path");
        assert!(v["at"].is_string());
        let back: Failure = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        assert!(f.to_string().contains("modal-eu-west, HTTP 404"));
    }

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(redact_url("http://a:b@h:8/x?k=v#f"), "http://h:8/x");
        assert_eq!(redact_url("https://host"), "https://host");
        assert_eq!(redact_url("host/p?q"), "host/p");
    }
}
