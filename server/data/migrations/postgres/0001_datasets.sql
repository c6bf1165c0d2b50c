-- The data-set index (server/data/postgres_dataset_index.h): one row per published data
-- set, shared by every replica that uses this database. The files stay on the shared
-- volume under <data_dir>/datasets/<name>; the row says what they hold.
CREATE TABLE datasets (
  name                 TEXT PRIMARY KEY,
  channels             INTEGER NOT NULL CHECK (channels >= 1),
  images               INTEGER NOT NULL CHECK (images >= 0),
  volumes              INTEGER NOT NULL CHECK (volumes >= 0),
  class_names          JSONB NOT NULL,
  train_images         INTEGER NOT NULL,
  val_images           INTEGER NOT NULL,
  test_images          INTEGER NOT NULL,
  disk_bytes           BIGINT NOT NULL,
  upload_id            TEXT NOT NULL,
  created_unix_seconds BIGINT NOT NULL
);
