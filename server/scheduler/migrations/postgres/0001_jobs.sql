-- The job table of the PostgreSQL job store (server/scheduler/postgres_job_store.h): the
-- same columns as SQLite's jobs.db. spec/result/progress stay TEXT, not jsonb: they are
-- opaque to the store and must come back byte for byte.
CREATE TABLE jobs (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- submission order (FIFO, newest first)
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 0,
  parent_id TEXT NOT NULL DEFAULT '',
  created_ms BIGINT NOT NULL DEFAULT 0,  -- Unix milliseconds; 0 = not reached
  started_ms BIGINT NOT NULL DEFAULT 0,
  finished_ms BIGINT NOT NULL DEFAULT 0,
  spec_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT NOT NULL DEFAULT '{}',
  progress_json TEXT NOT NULL DEFAULT '{}',
  restarts INTEGER NOT NULL DEFAULT 0,
  last_completed_epoch INTEGER NOT NULL DEFAULT 0,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX jobs_runnable ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_parent ON jobs (parent_id, seq);
