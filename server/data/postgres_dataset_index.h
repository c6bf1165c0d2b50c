// File: server/data/postgres_dataset_index.h — the data-set index in PostgreSQL (--database):
// table `datasets` (migrations/postgres/, component "datasets", applied at Open under the
// migration advisory lock), one row per published set with what Datasets.List shows. Any
// replica answers List from it, also one that does not mount the shared volume. Each call
// is one statement on the index's own connection (guarded by a mutex; listing is not a hot
// path, so nothing is cached).
//
// Reconcile (at Open, and before each List when this replica has the folder) reads the
// folder's visible subdirectories and adopts those without a row: a set whose publishing
// replica died between the rename and the Record, or a data dir's sets from before
// --database. It never drops rows: a replica without the volume (or with an empty one)
// must not erase the index; a row whose folder is gone is removed by `datasets delete`.
//
// With files_in_database (--blob_store=large_object; postgres_dataset_files.cc) the index
// also holds the files: Record stores every file of the folder as a large object, in the
// transaction that writes the row, and marks the folder with the digest of its file list
// (kFilesMarkerFile); LocalDir fetches a set this replica lacks (or holds an older copy of)
// into datasets/<name> through a hidden staging folder and a rename. So replicas need no
// shared volume: their datasets/ is a cache. Reconcile then also stores the files of rows
// recorded without them (a shared volume's sets from before large_object) and removes
// marked folders whose row is gone or names other files (copies of sets deleted or
// replaced through another replica).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/data/dataset_index.h"
#include "server/postgres/connection.h"
#include "server/postgres/migrations.h"

namespace segserve::data {

class PostgresDatasetIndex final : public DatasetIndex {
 public:
  static constexpr const char *kComponent = "datasets";

  // Connects, migrates and reconciles. Errors as PostgresJobStore::Open.
  static absl::StatusOr<std::unique_ptr<DatasetIndex>> Open(const std::string &datasets_dir,
                                                            postgres::ConnectOptions database,
                                                            bool files_in_database = false);
  // The embedded migrations, in version order (generated from migrations/postgres/).
  static const std::vector<postgres::Migration> &Migrations();

  absl::StatusOr<std::vector<DatasetEntry>> List() override;
  absl::StatusOr<bool> Contains(const std::string &name) override;
  absl::Status Record(const DatasetEntry &entry) override;
  absl::Status Remove(const std::string &name) override;
  absl::StatusOr<int> Reconcile() override;
  absl::StatusOr<std::string> LocalDir(const std::string &name, const std::string &field) override;
  absl::StatusOr<int> Channels(const std::string &name, const std::string &field) override;
  std::string Describe() const override;

 private:
  // What the row of a set says about its files.
  struct RowFiles {
    int channels = 0;
    std::string files_sha256;  // empty: the files are in the folder only
  };

  PostgresDatasetIndex(std::string dir, std::unique_ptr<postgres::Connection> db,
                       bool files_in_database);
  absl::StatusOr<std::vector<DatasetEntry>> SelectAll();
  absl::Status Upsert(postgres::Connection &db, const DatasetEntry &entry,
                      const std::string &files_sha256);
  absl::StatusOr<std::optional<RowFiles>> SelectRowFiles(const std::string &name);
  // name -> files_sha256 ("" when the files are in the folder only) of every row.
  absl::StatusOr<std::map<std::string, std::string>> SelectAllDigests();

  // postgres_dataset_files.cc. The files connection, opened on first use.
  absl::Status EnsureFilesDb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(files_mu_);
  // Stores the folder's files and the row in one transaction (a no-op when the row already
  // names the same files), then marks the folder.
  absl::Status StoreFiles(const DatasetEntry &entry);
  // Fetches the files of `name` (digest `files_sha256`) into datasets/<name>, replacing an
  // older copy there.
  absl::Status FetchFiles(const std::string &name, const std::string &files_sha256)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(files_mu_);
  // A marked folder whose row is gone or names other files: removed (true), else false.
  bool RemoveIfStale(const std::string &name, const std::string &row_sha256, bool has_row);

  const bool files_in_database_;
  const std::string description_;
  absl::Mutex db_mu_;
  std::unique_ptr<postgres::Connection> db_ ABSL_GUARDED_BY(db_mu_);
  // Stores and fetches run one at a time per replica on their own connection (they take
  // seconds for a large set; List and Contains do not wait for them).
  absl::Mutex files_mu_;  // never held with db_mu_
  std::unique_ptr<postgres::Connection> files_db_ ABSL_GUARDED_BY(files_mu_);
};

}  // namespace segserve::data
