-- The Idempotency-Key an attempt sent to the router. An attempt that follows an
-- interrupted one (shutdown hand-back, a crashed owner) re-sends the interrupted
-- attempt's key, so an answer the router got for it is replayed, not bought again.
-- NULL for attempts started before this migration (their key was `<execution>:<n>`).
ALTER TABLE execution_attempts ADD COLUMN call_key TEXT;
