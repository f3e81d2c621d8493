-- Beacon runner store, SQLite backend (docs/store.md). Mirrors migrations/postgres.
-- Times are INTEGER unix milliseconds (UTC), so comparisons and ordering are numeric.
-- JSON columns are TEXT; spec_json keeps the received bytes verbatim.
-- STRICT tables make SQLite enforce the declared column types.
-- WAL mode, busy_timeout and foreign_keys are connection settings, applied by the
-- store when it connects (they cannot live in a transactional migration).

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY NOT NULL,
    spec_json           TEXT NOT NULL,
    spec_sha256         TEXT NOT NULL,
    benchmark           TEXT,
    plan_json           TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    min_success_rate    REAL NOT NULL,
    total               INTEGER NOT NULL CHECK (total >= 0),
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    -- While the job runs: an early-stop reason that finalize keeps; once finished:
    -- the final reason.
    failure_reason      TEXT,
    failure_message     TEXT,
    submitter_key       TEXT,
    idempotency_key     TEXT UNIQUE,
    lease_owner         TEXT,
    lease_expires_at    INTEGER,
    cancel_requested_at INTEGER
) STRICT;

CREATE INDEX jobs_status_created ON jobs (status, created_at, id);
CREATE INDEX jobs_created ON jobs (created_at, id);

CREATE TABLE executions (
    id              TEXT PRIMARY KEY NOT NULL,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    question_id     TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    region          TEXT NOT NULL,
    run_index       INTEGER NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'retrying', 'completed', 'failed', 'timeout', 'cancelled')),
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    provider_id     TEXT,
    response        TEXT,
    response_sha256 TEXT,
    classification  TEXT
        CHECK (classification IN ('substantive', 'content_refusal', 'empty_response', 'technical_failure')),
    output          TEXT,
    failure         TEXT,
    receipt         TEXT,
    error_code      TEXT,
    latency_ms      INTEGER,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    completed_at    INTEGER,
    next_attempt_at INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (job_id, question_id, model_id, region, run_index)
) STRICT;

CREATE INDEX executions_job_status_seq ON executions (job_id, status, seq);
CREATE INDEX executions_job_seq ON executions (job_id, seq);
CREATE INDEX executions_created ON executions (created_at);

CREATE TABLE execution_attempts (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT,
    error_code   TEXT,
    http_status  INTEGER,
    provider_id  TEXT,
    latency_ms   INTEGER,
    PRIMARY KEY (execution_id, attempt)
) STRICT;

CREATE TABLE nonces (
    nonce   TEXT PRIMARY KEY NOT NULL,
    job_id  TEXT NOT NULL,
    seen_at INTEGER NOT NULL
) STRICT;
