-- An answer is stored exactly as the provider served it. PostgreSQL TEXT cannot hold
-- U+0000, and a model can produce it; BYTEA holds the UTF-8 bytes unchanged (the store
-- decodes them back to text, and response_sha256 is computed on the same bytes).
ALTER TABLE executions ALTER COLUMN response TYPE BYTEA USING convert_to(response, 'UTF8');
