-- Labels an optional judge model gave completed answers (docs/analysis.md "Judge").
-- One label per execution and rubric version: a new rubric labels again, a label is
-- never changed. `raw` is the judge's reply, cut to 500 characters. Deleted with the
-- execution.
CREATE TABLE judge_labels (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    rubric       TEXT NOT NULL,
    label        TEXT NOT NULL
        CHECK (label IN ('refusal', 'partial', 'substantive', 'unparsed')),
    model        TEXT NOT NULL,
    provider_id  TEXT,
    raw          TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (execution_id, rubric)
);

-- The judge's finder walks completed executions in id order; this keeps it from
-- reading every other row.
CREATE INDEX executions_completed_id ON executions (id) WHERE status = 'completed';
