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
#pragma once

#include <memory>
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
                                                            postgres::ConnectOptions database);
  // The embedded migrations, in version order (generated from migrations/postgres/).
  static const std::vector<postgres::Migration> &Migrations();

  absl::StatusOr<std::vector<DatasetEntry>> List() override;
  absl::StatusOr<bool> Contains(const std::string &name) override;
  absl::Status Record(const DatasetEntry &entry) override;
  absl::Status Remove(const std::string &name) override;
  absl::StatusOr<int> Reconcile() override;
  std::string Describe() const override;

 private:
  PostgresDatasetIndex(std::string dir, std::unique_ptr<postgres::Connection> db);
  absl::StatusOr<std::vector<DatasetEntry>> SelectAll();

  const std::string description_;
  absl::Mutex db_mu_;
  std::unique_ptr<postgres::Connection> db_ ABSL_GUARDED_BY(db_mu_);
};

}  // namespace segserve::data
