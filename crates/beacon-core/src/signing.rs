//! Ed25519 signatures over job specs, byte-compatible with the portal's signer.
//!
//! The signed bytes are the canonical text (see [`crate::canonical`]) of the object as
//! received, minus the top-level `signature`, `public_key`, `id` and `created_at`, and
//! minus `constraints.min_success_rate` when it is 0 (the portal drops it). Verifying
//! the received JSON value, not a re-serialised struct, keeps unknown fields such as
//! `wallet_auth` inside the signature; the previous runner lost them and broke
//! signatures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;

use crate::canonical::to_canonical_string;

/// Top-level keys outside the signed bytes.
const UNSIGNED_KEYS: [&str; 4] = ["signature", "public_key", "id", "created_at"];

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the spec is not a JSON object")]
    NotAnObject,
    #[error("the spec has no {0} field")]
    Missing(&'static str),
    #[error("{field} is not valid: {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error("the signature does not match the spec and public key")]
    Invalid,
}

impl SignatureError {
    /// The API error code (runner.md): missing → `SIGNATURE_MISSING`, else
    /// `SIGNATURE_INVALID`.
    pub fn error_code(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "SIGNATURE_MISSING",
            _ => "SIGNATURE_INVALID",
        }
    }
}

/// The exact string the portal signs for `spec`.
pub fn canonical_form(spec: &Value) -> String {
    to_canonical_string(&signed_view(spec, false))
}

/// The received object reduced to what is signed. `keep_created_at` reproduces older
/// portal builds, which left `created_at` inside the signed bytes.
fn signed_view(spec: &Value, keep_created_at: bool) -> Value {
    let Value::Object(map) = spec else {
        return spec.clone();
    };
    let mut map = map.clone();
    for key in UNSIGNED_KEYS {
        if !(keep_created_at && key == "created_at") {
            map.remove(key);
        }
    }
    if let Some(Value::Object(constraints)) = map.get_mut("constraints") {
        let is_zero = constraints
            .get("min_success_rate")
            .and_then(Value::as_f64)
            .is_some_and(|r| r == 0.0);
        if is_zero {
            constraints.remove("min_success_rate");
        }
    }
    Value::Object(map)
}

/// Verifies the spec's own `signature` against its own `public_key` and returns the key.
/// Whether the key is trusted is the caller's policy.
pub fn verify(spec: &Value) -> Result<VerifyingKey, SignatureError> {
    let Value::Object(map) = spec else {
        return Err(SignatureError::NotAnObject);
    };
    let key = decode_public_key(map.get("public_key"))?;
    let signature = decode_signature(map.get("signature"))?;
    let current = canonical_form(spec);
    if key.verify_strict(current.as_bytes(), &signature).is_ok() {
        return Ok(key);
    }
    // Older portal builds signed with `created_at` included; accepting that form
    // weakens nothing, since it signs strictly more of the object.
    if map.contains_key("created_at") {
        let legacy = to_canonical_string(&signed_view(spec, true));
        if key.verify_strict(legacy.as_bytes(), &signature).is_ok() {
            return Ok(key);
        }
    }
    Err(SignatureError::Invalid)
}

/// Returns `spec` with `public_key` and `signature` set, signed by `key` the portal's way.
pub fn sign(spec: &Value, key: &SigningKey) -> Result<Value, SignatureError> {
    let Value::Object(map) = spec else {
        return Err(SignatureError::NotAnObject);
    };
    let signature = key.sign(canonical_form(spec).as_bytes());
    let mut map = map.clone();
    map.insert(
        "public_key".into(),
        Value::String(encode_public_key(&key.verifying_key())),
    );
    map.insert(
        "signature".into(),
        Value::String(B64.encode(signature.to_bytes())),
    );
    Ok(Value::Object(map))
}

/// Base64 (standard, padded) of the raw 32-byte key, as the portal writes it.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a base64 raw 32-byte Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SignatureError> {
    decode_public_key(Some(&Value::String(text.to_string())))
}

/// Parses a base64 raw 32-byte Ed25519 private seed (the key file format).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, SignatureError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| malformed("signing key", e.to_string()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| malformed("signing key", "expected 32 bytes".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Base64 of a signing key's 32-byte seed.
pub fn encode_signing_key(key: &SigningKey) -> String {
    B64.encode(key.to_bytes())
}

pub(crate) fn sign_bytes(key: &SigningKey, bytes: &[u8]) -> String {
    B64.encode(key.sign(bytes).to_bytes())
}

pub(crate) fn decode_public_key(v: Option<&Value>) -> Result<VerifyingKey, SignatureError> {
    let text = match v {
        None | Some(Value::Null) => return Err(SignatureError::Missing("public_key")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(SignatureError::Missing("public_key"));
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err(malformed("public_key", "expected a base64 string".into())),
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| malformed("public_key", e.to_string()))?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| malformed("public_key", "expected 32 bytes".into()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| malformed("public_key", e.to_string()))
}

pub(crate) fn decode_signature(v: Option<&Value>) -> Result<Signature, SignatureError> {
    let text = match v {
        None | Some(Value::Null) => return Err(SignatureError::Missing("signature")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(SignatureError::Missing("signature"));
        }
        Some(Value::String(s)) => s,
        Some(_) => return Err(malformed("signature", "expected a base64 string".into())),
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| malformed("signature", e.to_string()))?;
    let raw: [u8; 64] = bytes
        .try_into()
        .map_err(|_| malformed("signature", "expected 64 bytes".into()))?;
    Ok(Signature::from_bytes(&raw))
}

fn malformed(field: &'static str, reason: String) -> SignatureError {
    SignatureError::Malformed { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn sign_then_verify_round_trips_and_ignores_unsigned_keys() {
        let spec = json!({"id": "j1", "created_at": "x", "questions": ["math_basic"],
                          "constraints": {"min_success_rate": 0}});
        let signed = sign(&spec, &key()).unwrap();
        assert_eq!(verify(&signed).unwrap(), key().verifying_key());
        let mut renamed = signed.clone();
        renamed["id"] = json!("j2");
        renamed["created_at"] = json!("y");
        assert!(verify(&renamed).is_ok());
        let mut tampered = signed.clone();
        tampered["questions"][0] = json!("taiwan_status");
        assert_eq!(verify(&tampered), Err(SignatureError::Invalid));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let spec = json!({"questions": []});
        assert_eq!(verify(&spec), Err(SignatureError::Missing("public_key")));
        assert_eq!(verify(&spec).unwrap_err().error_code(), "SIGNATURE_MISSING");
        let bad = json!({"public_key": "AAAA", "signature": "AAAA"});
        assert!(matches!(
            verify(&bad),
            Err(SignatureError::Malformed {
                field: "public_key",
                ..
            })
        ));
        assert_eq!(verify(&json!([1])), Err(SignatureError::NotAnObject));
    }

    #[test]
    fn legacy_form_with_created_at_still_verifies() {
        let spec = json!({"id": "j", "created_at": "2026-01-01T00:00:00.000Z", "runs": 1});
        let k = key();
        let legacy = to_canonical_string(&signed_view(&spec, true));
        let mut signed = spec.clone();
        signed["public_key"] = json!(encode_public_key(&k.verifying_key()));
        signed["signature"] = json!(sign_bytes(&k, legacy.as_bytes()));
        assert!(verify(&signed).is_ok());
        signed["created_at"] = json!("2026-01-02T00:00:00.000Z");
        assert_eq!(verify(&signed), Err(SignatureError::Invalid));
    }
}
