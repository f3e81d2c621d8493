-- Beacon runner store, PostgreSQL backend (docs/store.md).
-- Times are TIMESTAMPTZ, written with millisecond precision by the store.
-- JSON columns are TEXT: spec_json must keep the received bytes verbatim (it is what
-- was signed), and the others are opaque to SQL (the store never queries into them).
-- Integers are BIGINT so every counter and index decodes as i64 on both backends.

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    spec_json           TEXT NOT NULL,
    spec_sha256         TEXT NOT NULL,
    benchmark           TEXT,
    plan_json           TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    min_success_rate    DOUBLE PRECISION NOT NULL,
    total               BIGINT NOT NULL CHECK (total >= 0),
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    -- While the job runs: an early-stop reason (min_success_rate_unreachable,
    -- job_timeout) that finalize keeps; once finished: the final reason.
    failure_reason      TEXT,
    failure_message     TEXT,
    submitter_key       TEXT,
    idempotency_key     TEXT UNIQUE,
    lease_owner         TEXT,
    lease_expires_at    TIMESTAMPTZ,
    cancel_requested_at TIMESTAMPTZ
);

-- claim_job looks for the oldest queued/running job; list_jobs reads newest first.
CREATE INDEX jobs_status_created ON jobs (status, created_at, id);
CREATE INDEX jobs_created ON jobs (created_at, id);

CREATE TABLE executions (
    id              TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    question_id     TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    region          TEXT NOT NULL,
    run_index       BIGINT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'retrying', 'completed', 'failed', 'timeout', 'cancelled')),
    attempt_count   BIGINT NOT NULL DEFAULT 0,
    provider_id     TEXT,
    response        TEXT,
    response_sha256 TEXT,
    classification  TEXT
        CHECK (classification IN ('substantive', 'content_refusal', 'empty_response', 'technical_failure')),
    output          TEXT,
    failure         TEXT,
    receipt         TEXT,
    -- Copy of failure.code, so failures can be grouped without parsing JSON.
    error_code      TEXT,
    latency_ms      BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL,
    -- One row per cell: a job can never hold the same cell twice.
    UNIQUE (job_id, question_id, model_id, region, run_index)
);

-- pending_executions, counts and the "anything unfinished?" probe of finalize.
CREATE INDEX executions_job_status_seq ON executions (job_id, status, seq);
-- list_executions of one job in job order.
CREATE INDEX executions_job_seq ON executions (job_id, seq);
-- list_executions across jobs, newest first.
CREATE INDEX executions_created ON executions (created_at);

CREATE TABLE execution_attempts (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    outcome      TEXT,
    error_code   TEXT,
    http_status  BIGINT,
    provider_id  TEXT,
    latency_ms   BIGINT,
    PRIMARY KEY (execution_id, attempt)
);

-- Replay protection: a spec's metadata.nonce may be used once. No foreign key, so
-- nonces can outlive pruned jobs.
CREATE TABLE nonces (
    nonce   TEXT PRIMARY KEY,
    job_id  TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
