//! The benchmark's job specs: inline questions × models × regions × runs (the shape,
//! the questions and the signing are shared with the drills in `beacon_drills::spec`),
//! with the benchmark's own words and constraints, and the 100,000-execution big job.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

pub use beacon_drills::spec::{
    MAX_BODY_BYTES, MAX_EXECUTIONS, MAX_QUESTIONS, MODELS, REGIONS, Shape, new_key, random_bytes,
};
use beacon_drills::spec::{SpecText, sign, unsigned_spec};

/// The big job: 500 questions x 10 models (`m00` … `m09`, served by every simulator)
/// x 2 regions x 10 runs = 100,000 executions, the runner's limit.
pub fn big_job_shape() -> Shape {
    Shape {
        questions: MAX_QUESTIONS,
        models: big_job_models(),
        regions: REGIONS[..2].iter().map(|r| r.to_string()).collect(),
        runs: 10,
    }
}

pub fn big_job_models() -> Vec<String> {
    (0..10).map(|i| format!("m{i:02}")).collect()
}

/// A job id unique to this run: `bench-<label>-<nanos>`.
pub fn job_id(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bench-{label}-{nanos}")
}

/// The signed spec as the request body.
pub fn signed_body(id: &str, shape: &Shape, key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    if shape.executions() > MAX_EXECUTIONS {
        bail!(
            "{} executions is over the runner's limit of {MAX_EXECUTIONS}",
            shape.executions()
        );
    }
    let signed = sign(&unsigned(id, shape)?, key)?;
    let body = serde_json::to_vec(&signed)?;
    if body.len() > MAX_BODY_BYTES {
        bail!(
            "the job spec is {} bytes, over the runner's body limit of {MAX_BODY_BYTES}",
            body.len()
        );
    }
    Ok(body)
}

fn unsigned(id: &str, shape: &Shape) -> anyhow::Result<Value> {
    let text = SpecText {
        benchmark: "beacon-bench",
        description: "beacon-bench runner benchmark",
        question_id: "bench_q",
        question_text: "Benchmark question",
        category: "benchmark",
    };
    unsigned_spec(
        id,
        shape,
        &text,
        json!({"min_success_rate": 0.5, "timeout": "1h", "provider_timeout": "60s"}),
        json!({"temperature": 0.1, "max_tokens": 32}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_job_is_the_runners_limit() {
        assert_eq!(big_job_shape().executions(), MAX_EXECUTIONS);
    }

    #[test]
    fn the_body_is_signed_and_within_limits() {
        let key = new_key().unwrap_or_else(|e| panic!("{e}"));
        let body =
            signed_body("bench-x-1", &big_job_shape(), &key).unwrap_or_else(|e| panic!("{e}"));
        assert!(body.len() < MAX_BODY_BYTES);
        let spec: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert!(beacon_core::signing::verify(&spec).is_ok());
        assert_eq!(spec["questions"].as_array().map(Vec::len), Some(500));
        assert_eq!(spec["metadata"]["nonce"].as_str().map(str::len), Some(32));
    }
}
