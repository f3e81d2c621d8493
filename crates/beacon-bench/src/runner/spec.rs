//! The benchmark's job specs: inline questions × models × regions × runs, signed the
//! portal's way with a fresh nonce and timestamp, so acceptance does the same work
//! (signature, replay protection) as for a real submission.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use chrono::{SecondsFormat, Utc};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// The runner's limits (docs/job-spec.md).
pub const MAX_QUESTIONS: u64 = 500;
pub const MAX_RUNS: u64 = 20;
pub const MAX_EXECUTIONS: u64 = 100_000;
/// The runner's body limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The three simulated regions, one simulator each.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "asia-pacific"];
/// The models of the orchestration and throughput jobs (the simulator's defaults).
pub const MODELS: [&str; 3] = ["llama3.2-1b", "mistral-7b", "qwen2.5-1.5b"];

/// What a job asks: every question of every model in every region, `runs` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub questions: u64,
    pub models: Vec<String>,
    pub regions: Vec<String>,
    pub runs: u64,
}

impl Shape {
    pub fn executions(&self) -> u64 {
        self.questions * self.models.len() as u64 * self.regions.len() as u64 * self.runs
    }

    /// `n` executions over the three default models and the three regions: the fewest
    /// runs (1 … 20) that keep the questions within 500. `n` must be a multiple of 9.
    pub fn for_executions(n: u64) -> anyhow::Result<Shape> {
        let cells = (MODELS.len() * REGIONS.len()) as u64;
        if n == 0 || n % cells != 0 {
            bail!("--executions must be a positive multiple of {cells} (3 models x 3 regions)");
        }
        let per_cell = n / cells;
        let Some(runs) =
            (1..=MAX_RUNS).find(|r| per_cell % r == 0 && per_cell / r <= MAX_QUESTIONS)
        else {
            bail!(
                "{n} executions cannot be written as questions (<= {MAX_QUESTIONS}) x 3 models \
                 x 3 regions x runs (<= {MAX_RUNS})"
            );
        };
        Ok(Shape {
            questions: per_cell / runs,
            models: MODELS.iter().map(|m| m.to_string()).collect(),
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            runs,
        })
    }

    /// "100 questions x 3 models x 3 regions x 1 run".
    pub fn describe(&self) -> String {
        format!(
            "{} questions x {} models x {} regions x {} run{}",
            self.questions,
            self.models.len(),
            self.regions.len(),
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        )
    }
}

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
    let signed = beacon_core::signing::sign(&unsigned(id, shape)?, key)
        .map_err(|e| anyhow::anyhow!("cannot sign the job spec: {e}"))?;
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
    let questions: Vec<Value> = (0..shape.questions)
        .map(|i| {
            json!({
                "id": format!("bench_q{i}"),
                "text": format!(
                    "Benchmark question {i}: what is {} plus {}? Answer briefly.",
                    i % 97,
                    i % 89
                ),
                "category": "benchmark",
                "sensitive": false,
            })
        })
        .collect();
    let nonce: [u8; 16] = random_bytes()?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(json!({
        "id": id,
        "version": "v1",
        "benchmark": {"name": "beacon-bench", "version": "v1",
                      "description": "beacon-bench runner benchmark"},
        "questions": questions,
        "models": shape.models,
        "constraints": {"regions": shape.regions, "min_success_rate": 0.5,
                        "timeout": "1h", "provider_timeout": "60s"},
        "params": {"temperature": 0.1, "max_tokens": 32},
        "runs": shape.runs,
        "metadata": {"created_by": "beacon-bench", "nonce": hex::encode(nonce),
                     "timestamp": now},
        "created_at": now,
    }))
}

/// A fresh Ed25519 key (job specs, runner receipts).
pub fn new_key() -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_bytes(&random_bytes()?))
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_for_a_number_of_executions() {
        let s = Shape::for_executions(900).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.questions, s.runs, s.executions()), (100, 1, 900));
        let s = Shape::for_executions(9000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.questions, s.runs, s.executions()), (500, 2, 9000));
        assert!(Shape::for_executions(901).is_err());
        assert!(Shape::for_executions(0).is_err());
        assert!(Shape::for_executions(90_009).is_err()); // over 500 x 9 x 20
        assert_eq!(big_job_shape().executions(), 100_000);
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
