//! Ed25519 signatures over job specs, byte-compatible with the portal's signer.
//!
//! The signed bytes are the canonical text (see [`crate::canonical`]) of the object as
//! received, minus the top-level `signature`, `public_key`, `id` and `created_at`, and
//! minus `constraints.min_success_rate` when it is 0 (the portal drops it). Verifying
//! the received JSON value, not a re-serialised struct, keeps unknown fields such as
//! `wallet_auth` inside the signature; the previous runner lost them and broke
//! signatures.
//!
//! The portal's zero rule leaves one field that changes behaviour outside the signed
//! bytes: anyone could add `"min_success_rate": 0` to a signed spec and have it
//! attributed to the signer. [`verify_coverage`] therefore says whether a zero was only
//! accepted by being dropped, and Beacon's own [`sign`] keeps the zero inside the bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;

use crate::canonical::to_canonical_string;

/// Top-level keys outside the signed bytes.
const UNSIGNED_KEYS: [&str; 4] = ["signature", "public_key", "id", "created_at"];

/// The field the portal's rule leaves out of the signed bytes when it is 0.
pub const ZERO_RATE_FIELD: &str = "constraints.min_success_rate";

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

/// What a valid signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every field that can change behaviour is inside the signed bytes.
    Full,
    /// The spec says `constraints.min_success_rate: 0`, and the signature holds only
    /// with that zero dropped (the portal's rule): the signer may never have sent it.
    ZeroRateUnsigned,
}

/// Which form of the object a signature is checked against.
#[derive(Clone, Copy)]
struct Form {
    /// Older portal builds left `created_at` inside the signed bytes.
    keep_created_at: bool,
    /// The portal drops `constraints.min_success_rate` when it is 0.
    drop_zero_rate: bool,
}

const PORTAL: Form = Form {
    keep_created_at: false,
    drop_zero_rate: true,
};

/// The exact string the portal signs for `spec`.
pub fn canonical_form(spec: &Value) -> String {
    to_canonical_string(&signed_view(spec, PORTAL))
}

/// The received object reduced to what is signed in `form`.
fn signed_view(spec: &Value, form: Form) -> Value {
    let Value::Object(map) = spec else {
        return spec.clone();
    };
    let mut map = map.clone();
    for key in UNSIGNED_KEYS {
        if !(form.keep_created_at && key == "created_at") {
            map.remove(key);
        }
    }
    if form.drop_zero_rate && has_zero_rate(spec) {
        if let Some(Value::Object(constraints)) = map.get_mut("constraints") {
            constraints.remove("min_success_rate");
        }
    }
    Value::Object(map)
}

/// Whether the spec carries `constraints.min_success_rate` equal to 0.
fn has_zero_rate(spec: &Value) -> bool {
    spec.get("constraints")
        .and_then(|c| c.get("min_success_rate"))
        .and_then(Value::as_f64)
        .is_some_and(|r| r == 0.0)
}

/// Verifies the spec's own `signature` against its own `public_key` and returns the key.
/// Whether the key is trusted is the caller's policy. A zero `min_success_rate` outside
/// the signed bytes is accepted here (the portal's rule); callers that act on the spec
/// use [`verify_coverage`].
pub fn verify(spec: &Value) -> Result<VerifyingKey, SignatureError> {
    verify_coverage(spec).map(|(key, _)| key)
}

/// [`verify`], and whether the signature covers every field that changes behaviour.
pub fn verify_coverage(spec: &Value) -> Result<(VerifyingKey, Coverage), SignatureError> {
    let Value::Object(map) = spec else {
        return Err(SignatureError::NotAnObject);
    };
    let key = decode_public_key(map.get("public_key"))?;
    let signature = decode_signature(map.get("signature"))?;
    let zero = has_zero_rate(spec);
    // Older portal builds signed with `created_at` included; accepting that form
    // weakens nothing, since it signs strictly more of the object.
    let legacy = [false, true];
    let legacy = &legacy[..if map.contains_key("created_at") { 2 } else { 1 }];
    // Forms that keep a zero rate first: a signature over them covers it.
    for drop_zero_rate in [false, true] {
        if drop_zero_rate && !zero {
            break; // the same bytes as the form just tried
        }
        for &keep_created_at in legacy {
            let form = Form {
                keep_created_at,
                drop_zero_rate,
            };
            let bytes = to_canonical_string(&signed_view(spec, form));
            if key.verify_strict(bytes.as_bytes(), &signature).is_ok() {
                let coverage = if drop_zero_rate {
                    Coverage::ZeroRateUnsigned
                } else {
                    Coverage::Full
                };
                return Ok((key, coverage));
            }
        }
    }
    Err(SignatureError::Invalid)
}

/// Returns `spec` with `public_key` and `signature` set: signed the portal's way, except
/// that a zero `min_success_rate` stays inside the signed bytes (so the signature
/// covers it; [`Coverage::Full`]). Without a zero the bytes are the portal's.
pub fn sign(spec: &Value, key: &SigningKey) -> Result<Value, SignatureError> {
    let Value::Object(map) = spec else {
        return Err(SignatureError::NotAnObject);
    };
    let form = Form {
        keep_created_at: false,
        drop_zero_rate: false,
    };
    let signature = key.sign(to_canonical_string(&signed_view(spec, form)).as_bytes());
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
    fn a_zero_rate_added_after_signing_is_reported_unsigned() {
        let k = key();
        // Signed without the field, the portal's way...
        let spec = json!({"questions": ["math_basic"], "constraints": {"regions": ["EU"]}});
        let mut signed = sign(&spec, &k).unwrap();
        assert_eq!(verify_coverage(&signed).unwrap().1, Coverage::Full);
        // ...then a zero slipped in: the bytes still verify by the portal's rule, but
        // the zero is not the signer's.
        signed["constraints"]["min_success_rate"] = json!(0);
        assert!(verify(&signed).is_ok());
        assert_eq!(
            verify_coverage(&signed).unwrap().1,
            Coverage::ZeroRateUnsigned
        );
        // Beacon's signer keeps a zero inside the bytes: covered.
        let with_zero = json!({"questions": ["math_basic"],
                               "constraints": {"min_success_rate": 0.0}});
        let signed = sign(&with_zero, &k).unwrap();
        assert_eq!(verify_coverage(&signed).unwrap().1, Coverage::Full);
        // A nonzero rate is always inside the bytes.
        let mut changed = signed.clone();
        changed["constraints"]["min_success_rate"] = json!(0.5);
        assert_eq!(verify_coverage(&changed), Err(SignatureError::Invalid));
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
        let legacy = to_canonical_string(&signed_view(
            &spec,
            Form {
                keep_created_at: true,
                drop_zero_rate: true,
            },
        ));
        let mut signed = spec.clone();
        signed["public_key"] = json!(encode_public_key(&k.verifying_key()));
        signed["signature"] = json!(sign_bytes(&k, legacy.as_bytes()));
        assert!(verify(&signed).is_ok());
        signed["created_at"] = json!("2026-01-02T00:00:00.000Z");
        assert_eq!(verify(&signed), Err(SignatureError::Invalid));
    }
}
