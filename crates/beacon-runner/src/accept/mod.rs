//! Accepting a job: size, JSON, idempotent replays (before the nonce
//! check, as runner.md requires), the spec rules, the signature policy, replay
//! protection, the router's catalog, then one transaction that stores the job and
//! every execution. Any refusal stores nothing. The portal's cross-region wrapper
//! (`cross_region.rs`) feeds the same pipeline with the spec it carries.

pub mod cross_region;

pub use cross_region::CrossRegion;

use beacon_core::Catalogue;
use beacon_core::canonical::to_canonical_string;
use beacon_core::receipt::sha256_hex;
use beacon_core::signing::{self, SignatureError};
use beacon_core::spec::{JobPlan, Limits, read_spec};
use beacon_store::{Inserted, JobRecord, NewExecution, NewJob, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{SignatureConfig, SignaturePolicy};
use crate::error::ApiError;
use crate::plan::StoredPlan;
use crate::router::{Catalog, new_trace_id};

/// A submission as it arrived.
pub struct Submission<'a> {
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
    /// The cross-region wrapper's unsigned options, when the spec came in one.
    pub cross_region: Option<&'a CrossRegion>,
}

/// The stored job, and whether this request created it.
pub struct Accepted {
    pub job: JobRecord,
    pub created: bool,
}

/// Longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 200;

/// Everything the pipeline consults.
pub struct Acceptor<'a> {
    pub store: &'a dyn Store,
    pub catalogue: &'a Catalogue,
    pub limits: &'a Limits,
    pub signatures: &'a SignatureConfig,
    pub now: DateTime<Utc>,
}

impl Acceptor<'_> {
    /// Validates the submission; `catalog` is fetched lazily (only for new jobs).
    pub async fn accept<F, Fut>(
        &self,
        sub: Submission<'_>,
        catalog: F,
    ) -> Result<Accepted, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Catalog, ApiError>>,
    {
        let value = check_envelope(&sub, self.limits)?;
        let sha = sha256_hex(&to_canonical_string(&value));
        let key = match sub.idempotency_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) if k.len() > MAX_KEY_LEN => {
                return Err(ApiError::bad(
                    "INVALID_IDEMPOTENCY_KEY",
                    format!("Idempotency-Key is longer than {MAX_KEY_LEN} characters"),
                ));
            }
            other => other,
        };
        if let Some(replay) = self.replay(key, &value, &sha).await? {
            return Ok(Accepted {
                job: replay,
                created: false,
            });
        }

        let mut plan = read_spec(value, self.catalogue, self.limits).map_err(ApiError::Spec)?;
        let submitter_key = self.check_signature(&plan.spec)?;
        // After the signature: the thresholds the wrapper may raise, never lower.
        let min_regions = match sub.cross_region {
            Some(cr) => {
                let (rate, regions) = cr.apply(&plan)?;
                plan.options.min_success_rate = rate;
                regions
            }
            None => cross_region::effective_min_regions(&plan, None)?,
        };
        let nonce = self.check_freshness(&plan.spec, submitter_key.is_some())?;
        let catalog = catalog().await?;
        check_catalog(&plan, &catalog)?;

        // serde_json already checked the bytes are UTF-8; keep them verbatim.
        let raw = String::from_utf8_lossy(sub.body).into_owned();
        let (mut job, executions) = rows(&plan, raw, &sha, submitter_key, key, nonce, self.now);
        job.min_regions = min_regions;
        match self.store.insert_job(&job, &executions).await {
            Ok(Inserted::Created(job)) => Ok(Accepted { job, created: true }),
            Ok(Inserted::Existing(job)) => Ok(Accepted {
                job,
                created: false,
            }),
            Err(StoreError::ReplayedNonce(n)) => Err(ApiError::Conflict {
                code: "REPLAYED_NONCE",
                message: format!("metadata.nonce {n:?} was already used; sign the spec again"),
            }),
            Err(StoreError::JobIdConflict(id)) => Err(id_conflict(&id)),
            Err(e) => Err(e.into()),
        }
    }

    /// An identical resubmission (same key, or same id and body) is answered with the
    /// stored job; the same key or id with another body is a conflict.
    async fn replay(
        &self,
        key: Option<&str>,
        value: &Value,
        sha: &str,
    ) -> Result<Option<JobRecord>, ApiError> {
        if let Some(k) = key {
            if let Some(job) = self.store.find_job_by_idempotency_key(k).await? {
                return if job.spec_sha256 == sha {
                    Ok(Some(job))
                } else {
                    Err(ApiError::Conflict {
                        code: "IDEMPOTENCY_KEY_CONFLICT",
                        message: format!(
                            "Idempotency-Key {k:?} was used for job {} with a different body",
                            job.id
                        ),
                    })
                };
            }
        }
        let Some(id) = value.get("id").and_then(Value::as_str) else {
            return Ok(None);
        };
        if beacon_core::JobId::parse(id).is_err() {
            return Ok(None); // the spec reader refuses it with the right code
        }
        match self.store.get_job(id).await? {
            Some(job) if job.spec_sha256 == sha => Ok(Some(job)),
            Some(job) => Err(id_conflict(&job.id)),
            None => Ok(None),
        }
    }

    /// Verifies the signature per policy; returns the signer's key (base64).
    fn check_signature(&self, spec: &Value) -> Result<Option<String>, ApiError> {
        let has_any = spec.get("signature").is_some_and(|v| !v.is_null())
            || spec.get("public_key").is_some_and(|v| !v.is_null());
        if !has_any && self.signatures.policy == SignaturePolicy::Optional {
            return Ok(None);
        }
        let (key, coverage) = signing::verify_coverage(spec).map_err(|e| match e {
            SignatureError::Missing(field) => ApiError::bad(
                "SIGNATURE_MISSING",
                format!(
                    "the spec has no {field}; this runner requires signed specs (`beacon sign`)"
                ),
            ),
            other => ApiError::bad(
                "SIGNATURE_INVALID",
                format!("signature check failed: {other}"),
            ),
        })?;
        if coverage == signing::Coverage::ZeroRateUnsigned {
            // The portal's rule drops a zero rate from the signed bytes, so anyone could
            // have added it; acting on it would lower the bar in the signer's name.
            return Err(ApiError::BadRequest {
                code: "UNSIGNED_FIELD",
                message: format!(
                    "{} is 0 but the signature does not cover it (a zero is dropped from \
                     the signed bytes by the portal's rule); omit it, or sign the spec with \
                     the field included (`beacon sign` does)",
                    signing::ZERO_RATE_FIELD
                ),
                details: serde_json::json!({"field": signing::ZERO_RATE_FIELD}),
            });
        }
        let encoded = signing::encode_public_key(&key);
        let trusted = &self.signatures.trusted_keys;
        if !trusted.is_empty() && !trusted.iter().any(|k| k.trim() == encoded) {
            return Err(ApiError::Forbidden(format!(
                "public key {encoded} is not in trusted_keys"
            )));
        }
        Ok(Some(encoded))
    }

    /// Replay protection: a signed spec carries an unseen `metadata.nonce` and a
    /// `metadata.timestamp` within the allowed clock skew. Returns the nonce to store.
    fn check_freshness(&self, spec: &Value, signed: bool) -> Result<Option<String>, ApiError> {
        let meta = spec.get("metadata");
        let nonce = match meta.and_then(|m| m.get("nonce")) {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if n.trim().is_empty() => None,
            Some(Value::String(n)) => Some(valid_nonce(n.trim())?),
            Some(_) => {
                return Err(ApiError::bad(
                    "NONCE_INVALID",
                    "metadata.nonce must be a string",
                ));
            }
        };
        if !signed {
            return Ok(nonce.map(str::to_string));
        }
        let Some(nonce) = nonce else {
            return Err(ApiError::bad(
                "NONCE_MISSING",
                "a signed spec must carry metadata.nonce",
            ));
        };
        let stamp = meta
            .and_then(|m| m.get("timestamp"))
            .and_then(Value::as_str);
        let at = stamp
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| {
                ApiError::bad(
                    "STALE_TIMESTAMP",
                    "a signed spec must carry metadata.timestamp (RFC 3339)",
                )
            })?;
        let skew = (self.now - at.with_timezone(&Utc)).abs();
        let max = chrono::Duration::from_std(self.signatures.max_clock_skew).unwrap_or_default();
        if skew > max {
            return Err(ApiError::bad(
                "STALE_TIMESTAMP",
                format!(
                    "metadata.timestamp {} is {} s from the runner's clock; the limit is {} s",
                    stamp.unwrap_or(""),
                    skew.num_seconds(),
                    max.num_seconds()
                ),
            ));
        }
        Ok(Some(nonce.to_string()))
    }
}

/// What every submission obeys before its content is looked at: the body size limit,
/// valid JSON (the JSON content type is the API's guard, `api::guard::require_json`,
/// which runs before any handler). Returns the parsed body.
pub fn check_envelope(sub: &Submission<'_>, limits: &Limits) -> Result<Value, ApiError> {
    if sub.body.len() > limits.max_body_bytes {
        return Err(ApiError::Spec(beacon_core::spec::SpecError {
            code: beacon_core::spec::SpecErrorCode::PayloadTooLarge,
            message: format!(
                "body is {} bytes; the limit is {} bytes",
                sub.body.len(),
                limits.max_body_bytes
            ),
            field: Some("body".into()),
        }));
    }
    serde_json::from_slice(sub.body).map_err(|e| {
        ApiError::Spec(beacon_core::spec::SpecError {
            code: beacon_core::spec::SpecErrorCode::InvalidJson,
            message: format!("body is not valid JSON: {e}"),
            field: None,
        })
    })
}

fn id_conflict(id: &str) -> ApiError {
    ApiError::Conflict {
        code: "JOB_ID_CONFLICT",
        message: format!("job {id} already exists with a different spec; use a new id"),
    }
}

/// Every region must have a provider, and every model must be served in every region
/// the job asks (a cell nobody can answer would only fail later).
fn check_catalog(plan: &JobPlan, catalog: &Catalog) -> Result<(), ApiError> {
    for region in &plan.regions {
        if !catalog.serves_region(region.as_str()) {
            let known: Vec<&String> = catalog.regions.keys().collect();
            return Err(ApiError::BadRequest {
                code: "UNKNOWN_REGION",
                message: format!(
                    "the router has no provider in region {region}; it serves {known:?}"
                ),
                details: serde_json::json!({"region": region.as_str()}),
            });
        }
        for model in &plan.models {
            if !catalog.serves(region.as_str(), model.id.as_str()) {
                return Err(ApiError::BadRequest {
                    code: "UNKNOWN_MODEL",
                    message: format!("model {} is not served in region {region}", model.id),
                    details: serde_json::json!({"model": model.id.as_str(), "region": region.as_str()}),
                });
            }
        }
    }
    Ok(())
}

fn rows(
    plan: &JobPlan,
    spec_json: String,
    sha: &str,
    submitter_key: Option<String>,
    idempotency_key: Option<&str>,
    nonce: Option<String>,
    now: DateTime<Utc>,
) -> (NewJob, Vec<NewExecution>) {
    let stored = StoredPlan::from_plan(plan, new_trace_id());
    let job = NewJob {
        id: plan.id.to_string(),
        spec_json,
        spec_sha256: sha.to_string(),
        benchmark: plan.benchmark.clone(),
        plan_json: serde_json::to_value(&stored).unwrap_or(Value::Null),
        min_success_rate: plan.options.min_success_rate,
        min_regions: 0,
        total: plan.total_executions() as u64,
        submitter_key,
        idempotency_key: idempotency_key.map(str::to_string),
        nonce,
        created_at: now,
    };
    let executions = plan
        .cells()
        .enumerate()
        .map(|(seq, c)| NewExecution {
            id: uuid::Uuid::now_v7().to_string(),
            seq: seq as u32,
            question_id: c.question.id.to_string(),
            model_id: c.model.id.to_string(),
            region: c.region.to_string(),
            run_index: c.run,
        })
        .collect();
    (job, executions)
}

/// A nonce is at most 128 characters, none of them control characters (it is stored and
/// compared as text; NUL cannot be stored in PostgreSQL at all).
fn valid_nonce(nonce: &str) -> Result<&str, ApiError> {
    if nonce.chars().count() > 128 {
        return Err(ApiError::bad(
            "NONCE_INVALID",
            "metadata.nonce is longer than 128 characters",
        ));
    }
    if nonce.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "NONCE_INVALID",
            "metadata.nonce contains a control character",
        ));
    }
    Ok(nonce)
}
