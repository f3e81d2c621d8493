-- An execution's answer, output, receipt and failure are compressed with lz4 rather
-- than PostgreSQL's default pglz, where the server supports it (PostgreSQL 14 or later
-- built with lz4; otherwise nothing changes). A finished execution's row is ~3.4 KB,
-- over the 2 KB at which PostgreSQL compresses it, and compressing and storing it
-- (pglz, TOAST) was a sixth of the database's CPU in the write path; with lz4 the
-- database's CPU per execution fell by about a fifth, at a similar size
-- (docs/benchmarks.md, "2026-12-05, third session"). Only values written from now on
-- are affected; older ones stay readable as they are.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        -- Dynamic, so a server without the syntax never parses it.
        EXECUTE 'ALTER TABLE executions '
             || 'ALTER COLUMN response SET COMPRESSION lz4, '
             || 'ALTER COLUMN output SET COMPRESSION lz4, '
             || 'ALTER COLUMN receipt SET COMPRESSION lz4, '
             || 'ALTER COLUMN failure SET COMPRESSION lz4';
    END IF;
END
$$;
