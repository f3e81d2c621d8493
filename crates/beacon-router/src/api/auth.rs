//! Caller authentication of the inference routes (`[auth]`): which configured token a
//! request carries, or, on a router configured without tokens, its peer address. The
//! answer scopes `Idempotency-Key`s; `None` is a 401 before anything is read or bought.

use std::net::SocketAddr;

use axum::http::HeaderMap;

use crate::config::InferenceAuth;
use crate::idempotency::Caller;

/// The caller, or `None` when a token is required and none of them was sent.
pub fn identify(
    auth: &InferenceAuth,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<Caller> {
    match auth {
        InferenceAuth::Open => Some(Caller::Peer(peer.map(|p| p.ip()))),
        InferenceAuth::Tokens(tokens) => {
            // Every token is compared (each in constant time), so the time taken does
            // not say which one, if any, matched.
            let mut matched = None;
            for (i, t) in tokens.iter().enumerate() {
                if beacon_service::bearer_matches(headers, t) && matched.is_none() {
                    matched = Some(i);
                }
            }
            matched.map(Caller::Token)
        }
    }
}

/// The message of a 401 on the inference routes.
pub const REFUSED: &str = "missing or wrong inference token: send Authorization: Bearer <token> (the router's [auth] inference_token_env)";
