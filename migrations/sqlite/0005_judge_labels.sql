-- Labels an optional judge model gave completed answers (docs/analysis.md "Judge").
-- Mirrors migrations/postgres/0006_judge_labels.sql; times are unix milliseconds.
CREATE TABLE judge_labels (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    rubric       TEXT NOT NULL,
    label        TEXT NOT NULL
        CHECK (label IN ('refusal', 'partial', 'substantive', 'unparsed')),
    model        TEXT NOT NULL,
    provider_id  TEXT,
    raw          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (execution_id, rubric)
) STRICT;

CREATE INDEX executions_completed_id ON executions (id) WHERE status = 'completed';
