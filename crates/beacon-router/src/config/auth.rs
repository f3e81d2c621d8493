//! `[auth]`: who may ask the router for an inference. Every inference is a paid GPU
//! call and the router is reachable from the internet, so a bearer token is required
//! unless the file says, explicitly, `allow_unauthenticated = true` (local use). Having
//! neither is a configuration error, never a silent open router.

use beacon_service::config_error as err;
use serde::Deserialize;

use super::ConfigError;

/// Shortest token accepted: anything shorter can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// The `[auth]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Name of the environment variable holding the accepted token(s), comma-separated
    /// so a new token can be added before the old one is removed (rotation).
    inference_token_env: Option<String>,
    #[serde(default)]
    allow_unauthenticated: bool,
}

/// Who may call `POST /inference` and `POST /v1/chat/completions`.
#[derive(Clone)]
pub enum InferenceAuth {
    /// `Authorization: Bearer <one of these>`. A caller is known by the index of the
    /// token it sent (never by the token text).
    Tokens(Vec<String>),
    /// Anyone who reaches the router (`allow_unauthenticated = true`); callers are told
    /// apart by their peer address.
    Open,
}

impl std::fmt::Debug for InferenceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl InferenceAuth {
    /// For the summary line: how many tokens, never their text.
    pub fn describe(&self) -> String {
        match self {
            InferenceAuth::Tokens(t) => format!("bearer({} token(s))", t.len()),
            InferenceAuth::Open => "none (allow_unauthenticated)".into(),
        }
    }
}

/// Resolves `[auth]`: the token variable must be set (to tokens of at least
/// [`MIN_TOKEN_LEN`] visible ASCII characters), or unauthenticated use stated.
pub fn read(
    raw: &RawAuth,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<InferenceAuth, ConfigError> {
    const KEY: &str = "auth.inference_token_env";
    match (&raw.inference_token_env, raw.allow_unauthenticated) {
        (Some(_), true) => Err(err(
            "auth.allow_unauthenticated",
            "contradicts auth.inference_token_env; set only one",
        )),
        (None, true) => Ok(InferenceAuth::Open),
        (None, false) => Err(err(
            KEY,
            "no inference token configured: set [auth] inference_token_env = \"ROUTER_INFERENCE_TOKEN\" \
             (and that variable, the runner's ROUTER_TOKEN), or allow_unauthenticated = true for local use only",
        )),
        (Some(var), false) => {
            let value = env(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| err(KEY, format!("environment variable {var} is not set")))?;
            let tokens: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            for (i, t) in tokens.iter().enumerate() {
                if t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(err(
                        KEY,
                        format!(
                            "token {} of {var} must be at least {MIN_TOKEN_LEN} visible ASCII characters \
                             without spaces or commas",
                            i + 1
                        ),
                    ));
                }
            }
            Ok(InferenceAuth::Tokens(tokens))
        }
    }
}
