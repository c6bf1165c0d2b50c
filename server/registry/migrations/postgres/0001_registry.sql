-- The model registry (server/registry/postgres_model_store.h): every replica that uses this
-- database shares these tables.

-- One row per model name: the highest version number ever handed out, so a deleted number
-- is never reused. Deleting every version of a name deletes its row (it starts again at 1).
CREATE TABLE model_names (
  name            TEXT PRIMARY KEY,
  highest_version BIGINT NOT NULL
);

-- One row per complete version. The checkpoint bytes live in a blob: a large object
-- (blob_oid, written in the transaction that inserts the row, unlinked in the one that
-- deletes it) or a file under <data_dir>/blobs/models (blob_path, relative).
CREATE TABLE model_versions (
  name                 TEXT NOT NULL REFERENCES model_names (name),
  version              BIGINT NOT NULL CHECK (version >= 1),
  config               JSONB NOT NULL,
  metadata             JSONB NOT NULL,
  checkpoint_bytes     BIGINT NOT NULL,
  checkpoint_sha256    TEXT NOT NULL,
  created_unix_seconds BIGINT NOT NULL,
  blob_oid             OID,
  blob_path            TEXT,
  PRIMARY KEY (name, version),
  CHECK ((blob_oid IS NULL) <> (blob_path IS NULL))
);

CREATE TABLE model_aliases (
  alias   TEXT PRIMARY KEY,
  name    TEXT NOT NULL,
  version BIGINT NOT NULL  -- 0: the name's newest version
);

-- Bumped as the last statement of every registry write, so a replica polls one row to know
-- whether to reload the tables; it becomes visible with the write's commit.
CREATE TABLE registry_generation (
  id         INT PRIMARY KEY CHECK (id = 1),
  generation BIGINT NOT NULL
);
INSERT INTO registry_generation VALUES (1, 0);
