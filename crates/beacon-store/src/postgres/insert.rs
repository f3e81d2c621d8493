//! PostgreSQL job acceptance: the replay checks, the job and nonce rows, and every
//! execution batched through `UNNEST`, in the caller's transaction.

use super::{PgStore, Tx};
use crate::common::{self, job_cols, json_text, ms, to_i64};
use crate::{Inserted, NewExecution, NewJob, Result, StoreError};

/// Rows per `INSERT … SELECT FROM UNNEST(…)`: each statement carries six arrays, so a
/// 100,000-execution job is ten round trips.
const INSERT_CHUNK: usize = 10_000;

/// The job that makes a submission a replay: same idempotency key, or same id (then
/// the body must match). `Ok(None)`: no such job.
async fn existing_for(tx: &mut Tx, job: &NewJob) -> Result<Option<Inserted>> {
    if let Some(key) = &job.idempotency_key {
        let found = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = found {
            return Ok(Some(Inserted::Existing(common::job_from_row(&row)?)));
        }
    }
    let found = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
        .bind(&job.id)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        None => Ok(None),
        Some(row) => {
            let existing = common::job_from_row(&row)?;
            if existing.spec_sha256 == job.spec_sha256 {
                Ok(Some(Inserted::Existing(existing)))
            } else {
                Err(StoreError::JobIdConflict(job.id.clone()))
            }
        }
    }
}

async fn insert_executions(tx: &mut Tx, job: &NewJob, executions: &[NewExecution]) -> Result<()> {
    let created = ms(job.created_at);
    for chunk in executions.chunks(INSERT_CHUNK) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut seqs = Vec::with_capacity(chunk.len());
        let mut questions = Vec::with_capacity(chunk.len());
        let mut models = Vec::with_capacity(chunk.len());
        let mut regions = Vec::with_capacity(chunk.len());
        let mut runs = Vec::with_capacity(chunk.len());
        for e in chunk {
            ids.push(e.id.as_str());
            seqs.push(i64::from(e.seq));
            questions.push(e.question_id.as_str());
            models.push(e.model_id.as_str());
            regions.push(e.region.as_str());
            runs.push(i64::from(e.run_index));
        }
        // Arrays travel in the binary protocol: one statement per chunk, no per-row
        // parameters, no SQL text proportional to the row count.
        sqlx::query(
            "INSERT INTO executions (id, job_id, seq, question_id, model_id, region, run_index, \
             status, attempt_count, created_at, updated_at) \
             SELECT t.id, $1, t.seq, t.question_id, t.model_id, t.region, t.run_index, \
             'pending', 0, $2, $2 \
             FROM UNNEST($3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::int8[]) \
             AS t(id, seq, question_id, model_id, region, run_index)",
        )
        .bind(&job.id)
        .bind(created)
        .bind(&ids)
        .bind(&seqs)
        .bind(&questions)
        .bind(&models)
        .bind(&regions)
        .bind(&runs)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl PgStore {
    pub(super) async fn insert_job_in(
        tx: &mut Tx,
        job: &NewJob,
        executions: &[NewExecution],
    ) -> Result<Inserted> {
        if let Some(found) = existing_for(tx, job).await? {
            return Ok(found);
        }
        // ON CONFLICT DO NOTHING waits for a concurrent transaction holding the same id
        // or idempotency key; if that one committed, this inserts nothing and the
        // submission is a replay of it (or a conflicting id). Racing identical
        // submissions therefore serialize here, before their nonce and executions.
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, spec_json, spec_sha256, benchmark, plan_json, status, \
             min_success_rate, total, created_at, submitter_key, idempotency_key, min_regions) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.spec_json)
        .bind(&job.spec_sha256)
        .bind(&job.benchmark)
        .bind(json_text(&job.plan_json)?)
        .bind(job.min_success_rate)
        .bind(to_i64(job.total)?)
        .bind(ms(job.created_at))
        .bind(&job.submitter_key)
        .bind(&job.idempotency_key)
        .bind(i64::from(job.min_regions))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return match existing_for(tx, job).await? {
                Some(found) => Ok(found),
                // Only reachable if the conflicting row vanished again; report it as
                // the id conflict it was.
                None => Err(StoreError::JobIdConflict(job.id.clone())),
            };
        }
        if let Some(nonce) = &job.nonce {
            let fresh = sqlx::query(
                "INSERT INTO nonces (nonce, job_id, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(nonce)
            .bind(&job.id)
            .bind(ms(job.created_at))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                // The caller rolls `tx` back: nothing is written.
                return Err(StoreError::ReplayedNonce(nonce.clone()));
            }
        }
        insert_executions(tx, job, executions).await?;
        let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
            .bind(&job.id)
            .fetch_one(&mut **tx)
            .await?;
        let record = common::job_from_row(&row)?;
        Ok(Inserted::Created(record))
    }
}
