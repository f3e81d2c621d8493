//! Job specs for benchmarks and drills: a job's shape (inline questions x models x
//! regions x runs, within the runner's limits), the inline questions with their exact
//! prompt texts (so a simulator's call log can be matched back to a cell), and the
//! spec signed the portal's way with a fresh nonce and timestamp, so acceptance does the
//! same work (signature, replay protection) as for a real submission.

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

    /// `questions` x the three default models x the three regions x one run: every cell
    /// asked once, so each (region, model, prompt) is one execution.
    pub fn one_run(questions: u64) -> Shape {
        Shape {
            questions,
            models: MODELS.iter().map(|m| m.to_string()).collect(),
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            runs: 1,
        }
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

/// The words of a spec that are not its shape.
#[derive(Debug, Clone)]
pub struct SpecText<'a> {
    /// `benchmark.name` and `metadata.created_by`.
    pub benchmark: &'a str,
    pub description: &'a str,
    /// Question `i` has the id `{question_id}{i}`.
    pub question_id: &'a str,
    /// Question `i`'s text starts with `{question_text} {i}:`.
    pub question_text: &'a str,
    pub category: &'a str,
}

/// Question `i` of a job: `(id, text)`. The text is unique per `i`, so a (model,
/// prompt) pair names one cell of a one-run job.
pub fn question(text: &SpecText<'_>, i: u64) -> (String, String) {
    (
        format!("{}{i}", text.question_id),
        format!(
            "{} {i}: what is {} plus {}? Answer briefly.",
            text.question_text,
            i % 97,
            i % 89
        ),
    )
}

/// The unsigned spec: `shape`'s inline questions, models, regions and runs;
/// `constraints` (without `regions`, which come from the shape) and `params` as given;
/// a fresh nonce and the current time.
pub fn unsigned_spec(
    id: &str,
    shape: &Shape,
    text: &SpecText<'_>,
    constraints: Value,
    params: Value,
) -> anyhow::Result<Value> {
    let questions: Vec<Value> = (0..shape.questions)
        .map(|i| {
            let (qid, qtext) = question(text, i);
            json!({"id": qid, "text": qtext, "category": text.category, "sensitive": false})
        })
        .collect();
    let mut constraints = match constraints {
        Value::Object(m) => m,
        Value::Null => serde_json::Map::new(),
        other => bail!("constraints must be a JSON object, got {other}"),
    };
    constraints.insert("regions".into(), json!(shape.regions));
    let nonce: [u8; 16] = random_bytes()?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(json!({
        "id": id,
        "version": "v1",
        "benchmark": {"name": text.benchmark, "version": "v1",
                      "description": text.description},
        "questions": questions,
        "models": shape.models,
        "constraints": constraints,
        "params": params,
        "runs": shape.runs,
        "metadata": {"created_by": text.benchmark, "nonce": hex::encode(nonce),
                     "timestamp": now},
        "created_at": now,
    }))
}

/// `spec` signed with `key` (`signature` and `public_key` added).
pub fn sign(spec: &Value, key: &SigningKey) -> anyhow::Result<Value> {
    beacon_core::signing::sign(spec, key)
        .map_err(|e| anyhow::anyhow!("cannot sign the job spec: {e}"))
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
    }

    #[test]
    fn a_signed_spec_verifies_and_names_its_questions() {
        let text = SpecText {
            benchmark: "drill",
            description: "d",
            question_id: "q",
            question_text: "Drill question",
            category: "drill",
        };
        let shape = Shape::for_executions(18).unwrap_or_else(|e| panic!("{e}"));
        let spec = unsigned_spec("x", &shape, &text, json!({"timeout": "1m"}), json!({}))
            .and_then(|s| sign(&s, &new_key()?))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(beacon_core::signing::verify(&spec).is_ok());
        assert_eq!(spec["constraints"]["timeout"], "1m");
        assert_eq!(
            spec["constraints"]["regions"].as_array().map(Vec::len),
            Some(3)
        );
        let (id, q) = question(&text, 1);
        assert_eq!(spec["questions"][1]["id"], id.as_str());
        assert_eq!(spec["questions"][1]["text"], q.as_str());
        assert_ne!(question(&text, 2).1, q);
    }
}
