-- Data-set files as large objects (--blob_store=large_object; server/data/postgres_dataset_files.cc):
-- every regular file of a published set, so a replica without the shared volume fetches the
-- set into its own datasets/ folder. files_sha256 is the digest of the set's file list
-- (paths, sizes and SHA-256s); NULL: the files are on the shared volume only (a set recorded
-- with the directory backend). A row with a digest has all its files: they are written in
-- the transaction that sets it.
ALTER TABLE datasets ADD COLUMN files_sha256 TEXT;
CREATE TABLE dataset_files (
  dataset  TEXT NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
  path     TEXT NOT NULL,
  blob_oid OID NOT NULL,
  bytes    BIGINT NOT NULL CHECK (bytes >= 0),
  sha256   TEXT NOT NULL,
  PRIMARY KEY (dataset, path)
);
