-- The transparency log (docs/transparency.md, docs/store.md "Transparency log").
-- Mirrors migrations/postgres/0003_transparency_log.sql; times are unix milliseconds.
--
-- Every receipt written to executions.receipt is queued by a trigger in the same
-- transaction, with a copy of its text; the appender (Store::append_receipts) moves
-- queued receipts into transparency_log with dense sequence numbers (leaf indices).

CREATE TABLE transparency_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    receipt      TEXT NOT NULL,
    queued_at    INTEGER NOT NULL
) STRICT;

-- No foreign keys: the log outlives pruned jobs and executions.
CREATE TABLE transparency_log (
    sequence       INTEGER PRIMARY KEY NOT NULL CHECK (sequence >= 0),
    execution_id   TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    -- The leaf data: SHA-256 (hex) of `receipt`.
    receipt_sha256 TEXT NOT NULL,
    -- RFC 6962 leaf hash (hex) SHA-256(0x00 || leaf data); a receipt is logged once.
    leaf_hash      TEXT NOT NULL UNIQUE,
    -- The receipt's canonical text, exactly the bytes receipt_sha256 hashes.
    receipt        TEXT NOT NULL,
    appended_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX transparency_log_execution ON transparency_log (execution_id, sequence);

CREATE TABLE transparency_head (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    size       INTEGER NOT NULL CHECK (size >= 0),
    updated_at INTEGER
) STRICT;
INSERT INTO transparency_head (id, size, updated_at) VALUES (1, 0, NULL);

-- Append-only: an entry, once written, is never changed or removed.
CREATE TRIGGER transparency_log_no_update BEFORE UPDATE ON transparency_log
BEGIN
    SELECT RAISE(ABORT, 'transparency_log is append-only');
END;
CREATE TRIGGER transparency_log_no_delete BEFORE DELETE ON transparency_log
BEGIN
    SELECT RAISE(ABORT, 'transparency_log is append-only');
END;

-- Only UPDATEs queue: executions are inserted without a receipt (see the PostgreSQL
-- migration for why there is no INSERT trigger).
CREATE TRIGGER executions_receipt_written AFTER UPDATE OF receipt ON executions
FOR EACH ROW WHEN NEW.receipt IS NOT NULL AND NEW.receipt IS NOT OLD.receipt
BEGIN
    INSERT INTO transparency_queue (execution_id, job_id, receipt, queued_at)
    VALUES (NEW.id, NEW.job_id, NEW.receipt,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

-- Receipts stored before this migration are logged too, oldest first.
INSERT INTO transparency_queue (execution_id, job_id, receipt, queued_at)
SELECT id, job_id, receipt, COALESCE(completed_at, updated_at)
FROM executions WHERE receipt IS NOT NULL
ORDER BY completed_at, id;
