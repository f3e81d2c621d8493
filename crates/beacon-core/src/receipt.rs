//! Execution receipts: what was asked, of whom, where, and a hash of what came back,
//! signed by the runner's Ed25519 key so anyone can check a stored answer offline.
//!
//! The signed bytes are the canonical text (see [`crate::canonical`]) of the receipt
//! without `signature` and `public_key`.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_string;
use crate::signing::{
    SignatureError, decode_public_key, decode_signature, encode_public_key, sign_bytes,
};

pub const RECEIPT_SCHEMA: &str = "beacon.receipt/v1";

/// Hex SHA-256 of a text, as receipts record prompts and answers.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The request part of a receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptRequest {
    pub prompt_sha256: String,
    pub temperature: f64,
    pub max_tokens: u32,
}

/// A signed statement about one terminal execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub schema: String,
    pub job_id: String,
    pub execution_id: String,
    pub question_id: String,
    pub model_id: String,
    pub region: String,
    pub run_index: u32,
    pub provider_id: Option<String>,
    pub provider_region_label: Option<String>,
    pub request: ReceiptRequest,
    /// SHA-256 of the stored answer text; `None` when there is no answer.
    pub response_sha256: Option<String>,
    pub status: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub trace_id: Option<String>,
    /// The provider's own receipt, verbatim (Modal's `receipt`), if it sent one.
    pub provider_receipt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Receipt {
    /// The bytes the signature covers.
    fn signed_text(&self) -> Result<String, SignatureError> {
        let mut v = serde_json::to_value(self).map_err(|e| SignatureError::Malformed {
            field: "receipt",
            reason: e.to_string(),
        })?;
        if let Value::Object(map) = &mut v {
            map.remove("signature");
            map.remove("public_key");
        }
        Ok(to_canonical_string(&v))
    }

    /// Signs in place with the runner's key.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), SignatureError> {
        self.signature = None;
        self.public_key = Some(encode_public_key(&key.verifying_key()));
        let text = self.signed_text()?;
        self.signature = Some(sign_bytes(key, text.as_bytes()));
        Ok(())
    }

    /// Checks the signature against the receipt's own key; the caller decides whether
    /// that key is the runner's.
    pub fn verify(&self) -> Result<VerifyingKey, SignatureError> {
        let key = decode_public_key(
            self.public_key
                .as_ref()
                .map(|k| Value::String(k.clone()))
                .as_ref(),
        )?;
        let sig = decode_signature(
            self.signature
                .as_ref()
                .map(|s| Value::String(s.clone()))
                .as_ref(),
        )?;
        let text = self.signed_text()?;
        key.verify_strict(text.as_bytes(), &sig)
            .map(|()| key)
            .map_err(|_| SignatureError::Invalid)
    }

    /// Checks that `answer` is the text this receipt vouches for.
    pub fn matches_answer(&self, answer: Option<&str>) -> bool {
        self.response_sha256.as_deref() == answer.map(sha256_hex).as_deref()
    }
}

/// The receipt's own (signed) fields of `served`: what the runner stored, signed and
/// logged. The runner's receipt route adds display fields for the portal next to them
/// (`output`, `execution_details`, …); they are not signed and not logged.
pub fn signed_part(served: &Value) -> Value {
    serde_json::from_value::<Receipt>(served.clone())
        .ok()
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_else(|| served.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            schema: RECEIPT_SCHEMA.into(),
            job_id: "job-1".into(),
            execution_id: "e-1".into(),
            question_id: "math_basic".into(),
            model_id: "llama3.2-1b".into(),
            region: "eu-west".into(),
            run_index: 0,
            provider_id: Some("sim-eu-west".into()),
            provider_region_label: Some("eu-west".into()),
            request: ReceiptRequest {
                prompt_sha256: sha256_hex("What is 2 + 2?"),
                temperature: 0.1,
                max_tokens: 500,
            },
            response_sha256: Some(sha256_hex("4")),
            status: "completed".into(),
            started_at: Some("2026-11-24T10:00:00Z".into()),
            completed_at: Some("2026-11-24T10:00:01Z".into()),
            trace_id: None,
            provider_receipt: Some(serde_json::json!({"provenance": {"provider": "beacon-sim"}})),
            public_key: None,
            signature: None,
        }
    }

    #[test]
    fn signed_receipts_verify_and_any_change_breaks_them() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let mut r = receipt();
        assert_eq!(r.verify(), Err(SignatureError::Missing("public_key")));
        r.sign(&key).unwrap();
        assert_eq!(r.verify().unwrap(), key.verifying_key());
        // Through JSON and back (how it is stored) it still verifies.
        let stored: Receipt = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(stored.verify().is_ok());
        let mut tampered = r.clone();
        tampered.response_sha256 = Some(sha256_hex("5"));
        assert_eq!(tampered.verify(), Err(SignatureError::Invalid));
        assert!(
            r.matches_answer(Some("4")) && !r.matches_answer(Some("5")) && !r.matches_answer(None)
        );
    }
}
