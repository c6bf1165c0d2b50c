// File: tests/registry/store_backends.h — the model store suites run against every backend:
// files in a temp dir, and PostgreSQL (a fresh database on this binary's test PostgreSQL,
// tests/testing/postgres_server.h) with each blob backend. Instances for PostgreSQL are
// named Postgres*, so they run as the one ctest entry NAME.Postgres (segserve_test
// POSTGRES): one PostgreSQL start per binary.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "server/postgres/connection.h"
#include "server/registry/model_store.h"
#include "tests/testing/server_process.h"

namespace segserve::registry {

enum class StoreBackend { kFiles, kPostgresDirectory, kPostgresLargeObject };
void PrintTo(StoreBackend backend, std::ostream* os);

// The data one test's stores share (a data dir, and a database for PostgreSQL).
class StoreFactory {
 public:
  explicit StoreFactory(StoreBackend backend);
  // A new store on the same data (a second instance = another replica or process).
  absl::StatusOr<std::unique_ptr<ModelStore>> Open(ModelStoreOptions options = {});
  // Another data dir on the same database: a replica on another node (the directory blob
  // backend's files are then not shared: only for the large-object backend).
  absl::StatusOr<std::unique_ptr<ModelStore>> OpenElsewhere(const std::string& data_dir,
                                                            ModelStoreOptions options = {});
  StoreBackend backend() const { return backend_; }
  bool postgres() const { return backend_ != StoreBackend::kFiles; }
  const std::string& data_dir() const { return dir_.path(); }
  // How many checkpoint blobs exist: version directories (files), blob files (directory
  // backend) or large objects. A deleted version leaves none behind.
  absl::StatusOr<int64_t> BlobCount();
  // An admin connection to the test database (PostgreSQL only).
  absl::StatusOr<std::unique_ptr<postgres::Connection>> Admin();

 private:
  StoreBackend backend_;
  testing::TempDir dir_;
  absl::StatusOr<std::string> database_;
};

}  // namespace segserve::registry
