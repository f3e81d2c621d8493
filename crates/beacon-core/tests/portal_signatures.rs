//! The portal's own signatures (tests/fixtures/portal-signatures.json): every canonical
//! string reproduced byte for byte and every verdict as expected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use beacon_core::signing::{canonical_form, verify};
use serde_json::Value;

mod common;

fn fixtures() -> Vec<Value> {
    let parsed: Value =
        serde_json::from_str(&common::read_fixture("portal-signatures.json")).unwrap();
    parsed.as_array().unwrap().clone()
}

#[test]
fn every_portal_vector_matches() {
    let vectors = fixtures();
    assert!(
        vectors.len() >= 8,
        "expected the full fixture set, got {}",
        vectors.len()
    );
    let (mut valid, mut invalid) = (0, 0);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let body = &v["body"];
        let expect_valid = v["expect_valid"].as_bool().unwrap();
        if let Some(canonical) = v.get("canonical").and_then(Value::as_str) {
            assert_eq!(canonical_form(body), canonical, "canonical form of {name}");
        }
        let verdict = verify(body);
        assert_eq!(
            verdict.is_ok(),
            expect_valid,
            "verdict for {name}: {verdict:?}"
        );
        if expect_valid {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid > 0 && invalid > 0);
}
