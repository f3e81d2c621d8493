-- The transparency log (docs/transparency.md, docs/store.md "Transparency log").
--
-- Every receipt written to executions.receipt is queued by a trigger in the same
-- transaction, with a copy of its text: a receipt is never missed, whatever code path
-- wrote it, and a receipt replaced later (retry-failed clears it, a re-run writes a new
-- one) is still logged as it was. The appender (Store::append_receipts) moves queued
-- receipts into transparency_log under a lock on the one-row transparency_head, giving
-- each the next dense sequence number (its leaf index).

CREATE TABLE transparency_queue (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    receipt      TEXT NOT NULL,
    queued_at    TIMESTAMPTZ NOT NULL
);

-- No foreign keys: the log outlives pruned jobs and executions.
CREATE TABLE transparency_log (
    sequence       BIGINT PRIMARY KEY CHECK (sequence >= 0),
    execution_id   TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    -- The leaf data: SHA-256 (hex) of `receipt`.
    receipt_sha256 TEXT NOT NULL,
    -- RFC 6962 leaf hash (hex) SHA-256(0x00 || leaf data); a receipt is logged once.
    leaf_hash      TEXT NOT NULL UNIQUE,
    -- The receipt's canonical text, exactly the bytes receipt_sha256 hashes.
    receipt        TEXT NOT NULL,
    appended_at    TIMESTAMPTZ NOT NULL
);

-- An execution's newest entry (proofs by execution id).
CREATE INDEX transparency_log_execution ON transparency_log (execution_id, sequence);

-- The appenders' lock and the log's size (= the next sequence number).
CREATE TABLE transparency_head (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    size       BIGINT NOT NULL CHECK (size >= 0),
    updated_at TIMESTAMPTZ
);
INSERT INTO transparency_head (id, size, updated_at) VALUES (1, 0, NULL);

-- Append-only: an entry, once written, is never changed or removed.
CREATE FUNCTION transparency_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transparency_log is append-only';
END
$$;
CREATE TRIGGER transparency_log_append_only
    BEFORE UPDATE OR DELETE ON transparency_log
    FOR EACH ROW EXECUTE FUNCTION transparency_log_refuse_change();

CREATE FUNCTION transparency_enqueue_receipt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transparency_queue (execution_id, job_id, receipt, queued_at)
    VALUES (NEW.id, NEW.job_id, NEW.receipt, date_trunc('milliseconds', now()));
    RETURN NULL;
END
$$;

-- Only UPDATEs queue: executions are inserted without a receipt (insert_job), and an
-- AFTER INSERT row trigger, even one whose WHEN is false, made a 100,000-execution
-- insert ~0.5 s (30 %) slower.
CREATE TRIGGER executions_receipt_written
    AFTER UPDATE OF receipt ON executions
    FOR EACH ROW WHEN (NEW.receipt IS NOT NULL AND NEW.receipt IS DISTINCT FROM OLD.receipt)
    EXECUTE FUNCTION transparency_enqueue_receipt();

-- Receipts stored before this migration are logged too, oldest first.
INSERT INTO transparency_queue (execution_id, job_id, receipt, queued_at)
SELECT id, job_id, receipt, COALESCE(completed_at, updated_at)
FROM executions WHERE receipt IS NOT NULL
ORDER BY completed_at, id;
