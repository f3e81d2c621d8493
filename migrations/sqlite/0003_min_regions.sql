-- A job's region quorum (constraints.min_regions, or the portal's cross-region
-- wrapper): it completes only if at least this many regions have a completed
-- execution. 0 = no quorum (every job before this migration).
ALTER TABLE jobs ADD COLUMN min_regions INTEGER NOT NULL DEFAULT 0 CHECK (min_regions >= 0);
