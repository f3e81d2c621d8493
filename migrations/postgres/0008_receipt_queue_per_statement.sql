-- The transparency queue (migration 0003) is filled once per UPDATE statement rather
-- than once per row: the scheduler stores its answers in groups (one statement for
-- many executions), and a row trigger ran a PL/pgSQL call and an INSERT for each
-- receipt, a tenth of the database's CPU in the write path. The rule is unchanged:
-- every receipt written to executions.receipt, non-null and different from the one
-- it replaces, is queued in the same transaction with a copy of its text, whatever
-- code path wrote it. The transition tables hold the statement's rows before and
-- after; a column list (UPDATE OF receipt) cannot be combined with them, so every
-- UPDATE of executions passes through here and the join keeps only changed receipts.

DROP TRIGGER executions_receipt_written ON executions;
DROP FUNCTION transparency_enqueue_receipt();

CREATE FUNCTION transparency_enqueue_receipts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transparency_queue (execution_id, job_id, receipt, queued_at)
    SELECT n.id, n.job_id, n.receipt, date_trunc('milliseconds', now())
    FROM written_rows n JOIN replaced_rows o ON o.id = n.id
    WHERE n.receipt IS NOT NULL AND n.receipt IS DISTINCT FROM o.receipt
    ORDER BY n.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER executions_receipt_written
    AFTER UPDATE ON executions
    REFERENCING OLD TABLE AS replaced_rows NEW TABLE AS written_rows
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_enqueue_receipts();
