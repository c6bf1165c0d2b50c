-- Training checkpoints in PostgreSQL large objects (server/training/run_checkpoints.h, with
-- --blob_store=large_object): the files of a job's run that another trainer needs to resume
-- it (latest.ckpt, latest.optim, best.ckpt), one row per file. A row is replaced only in a
-- transaction that finds the job still RUNNING under the writer's attempt (the fencing
-- token of the jobs table), and its old large object is unlinked in the same transaction.
CREATE TABLE run_files (
  job_id     TEXT NOT NULL,
  file       TEXT NOT NULL,
  attempt    INTEGER NOT NULL,
  blob_oid   OID NOT NULL,
  bytes      BIGINT NOT NULL,
  sha256     TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (job_id, file)
);
