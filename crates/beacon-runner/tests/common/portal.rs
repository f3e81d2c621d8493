//! The portal as a client (portal-contract.md): its headers on every call, the job spec
//! it builds in the browser (2.1.2) signed its way (2.1.3, wallet authorization added
//! before signing), and its cross-region wrapper (2.1.1).

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use super::Stack;

/// Questions the portal tests ask (a control question, two sensitive, one cultural).
pub const QUESTIONS: [&str; 4] = [
    "identity_basic",
    "tiananmen_neutral",
    "taiwan_status",
    "greatest_leader",
];

/// A JSON string the portal reads, or the test fails saying what it got.
pub fn string(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// The portal's origin in these tests (one of the runner's default CORS origins).
pub const ORIGIN: &str = "http://localhost:5173";

/// The portal's display names of the three models.
fn model_name(id: &str) -> &'static str {
    match id {
        "llama3.2-1b" => "Llama 3.2-1B",
        "mistral-7b" => "Mistral 7B Instruct",
        _ => "Qwen 2.5-1.5B Instruct",
    }
}

/// `useBiasDetection.onSubmitJob`: the spec before signing.
pub fn unsigned_spec(id: &str, questions: &[&str], models: &[&str], regions: &[&str]) -> Value {
    let first = questions.first().copied().unwrap_or("identity_basic");
    let multi = models.len() > 1;
    json!({
        "id": id,
        "version": "v1",
        "benchmark": {
            "name": if multi { "multi-model-bias-detection" } else { "bias-detection" },
            "version": "v1",
            "description": "Multi-model regional bias detection",
            "container": {"image": "ghcr.io/project-beacon/bias-detection:latest", "tag": "latest",
                          "resources": {"cpu": "1000m", "memory": "2Gi"}},
            "input": {"type": "prompt", "data": {"prompt": first}, "hash": "sha256:placeholder"},
        },
        // min_success_rate is undefined in the browser, so JSON.stringify leaves it out.
        "constraints": {"regions": regions, "min_regions": 1,
                        "timeout": 600000000000u64, "provider_timeout": 600000000000u64},
        "metadata": {
            "created_by": "portal",
            "wallet_address": "0x1111111111111111111111111111111111111111",
            "execution_type": if regions.len() > 1 { "cross-region" } else { "single-region" },
            "estimated_cost": "0.0036",
            "multi_model": multi,
            "models": models,
            "total_executions_expected": regions.len() * models.len() * questions.len(),
            "model": models.first().copied().unwrap_or("llama3.2-1b"),
            "model_name": model_name(models.first().copied().unwrap_or("llama3.2-1b")),
        },
        "runs": 1,
        "questions": questions,
    })
}

/// `signJobSpecForAPI(spec, {includeWalletAuth: true})`: timestamp, nonce and
/// `created_at` added, the wallet authorization added, then signed over the canonical
/// form (the portal's sorted-key `JSON.stringify`, without `signature`, `public_key`,
/// `id`, `created_at`).
pub fn sign_portal_way(spec: Value, key: &SigningKey) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut spec = spec;
    let public = beacon_core::signing::encode_public_key(&key.verifying_key());
    spec["metadata"]["timestamp"] = json!(now);
    spec["metadata"]["nonce"] = json!(&beacon_store::testing::random_hex()[..16]);
    spec["created_at"] = json!(now);
    spec["wallet_auth"] = json!({
        "address": "0x1111111111111111111111111111111111111111",
        "signature": format!("0x{}", "ab".repeat(65)),
        "message": format!("Authorize Project Beacon key: {public}"),
        "chainId": 1,
        "nonce": "n-1",
        "expiresAt": now,
    });
    beacon_core::signing::sign(&spec, key).expect("a spec object signs")
}

/// The wrapper the Bias Detection page submits.
pub fn wrapper(jobspec: Value, codes: &[&str]) -> Value {
    let min_regions = ((codes.len() as f64 * 0.67).floor() as u64).max(1);
    json!({
        "jobspec": jobspec,
        "target_regions": codes,
        "min_regions": min_regions,
        "min_success_rate": 0.67,
        "enable_analysis": true,
    })
}

impl Stack {
    /// A call the portal's way: its headers (JSON content type even on GET), its origin.
    pub async fn portal(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = if path.starts_with("/api/") {
            format!("{}{path}", self.runner.url)
        } else {
            format!("{}/api/v1{path}", self.runner.url)
        };
        let mut req = self
            .http
            .request(method.parse().expect("a method"), url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Origin", ORIGIN);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("the runner answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
