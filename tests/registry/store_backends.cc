#include "tests/registry/store_backends.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "server/common/status_macros.h"
#include "tests/testing/postgres_server.h"

namespace segserve::registry {
namespace fs = std::filesystem;

void PrintTo(StoreBackend backend, std::ostream* os) {
  switch (backend) {
    case StoreBackend::kFiles:
      *os << "files";
      return;
    case StoreBackend::kPostgresDirectory:
      *os << "postgres_directory";
      return;
    case StoreBackend::kPostgresLargeObject:
      *os << "postgres_large_object";
      return;
  }
}

StoreFactory::StoreFactory(StoreBackend backend)
    : backend_(backend), database_(absl::UnknownError("not PostgreSQL")) {
  if (!postgres()) return;
  absl::StatusOr<testing::PostgresServer*> server = testing::SharedPostgresServer();
  database_ = server.ok() ? (*server)->CreateDatabase() : server.status();
}

absl::StatusOr<std::unique_ptr<ModelStore>> StoreFactory::Open(ModelStoreOptions options) {
  return OpenElsewhere(dir_.path(), std::move(options));
}

absl::StatusOr<std::unique_ptr<ModelStore>> StoreFactory::OpenElsewhere(const std::string& data_dir,
                                                                        ModelStoreOptions options) {
  if (postgres()) {
    RETURN_IF_ERROR(database_.status());
    options.database.conninfo = (*testing::SharedPostgresServer())->ConnInfo(*database_);
    options.database.what = "model registry database";
    options.blobs = backend_ == StoreBackend::kPostgresLargeObject ? BlobBackend::kLargeObject
                                                                   : BlobBackend::kDirectory;
  }
  return ModelStore::Open(data_dir, std::move(options));
}

absl::StatusOr<std::unique_ptr<postgres::Connection>> StoreFactory::Admin() {
  RETURN_IF_ERROR(database_.status());
  postgres::ConnectOptions options;
  options.conninfo = (*testing::SharedPostgresServer())->ConnInfo(*database_);
  return postgres::Connection::Open(options);
}

absl::StatusOr<int64_t> StoreFactory::BlobCount() {
  int64_t count = 0;
  std::error_code ec;
  switch (backend_) {
    case StoreBackend::kFiles:
      for (const auto& model : fs::directory_iterator(dir_.path() + "/models", ec)) {
        if (!model.is_directory()) continue;
        for (const auto& version : fs::directory_iterator(model.path(), ec)) {
          int64_t number = 0;
          if (version.is_directory() &&
              absl::SimpleAtoi(version.path().filename().string(), &number)) {
            ++count;
          }
        }
      }
      return count;
    case StoreBackend::kPostgresDirectory:
      for (const auto& entry : fs::recursive_directory_iterator(dir_.path() + "/blobs", ec)) {
        if (entry.is_regular_file()) ++count;
      }
      return count;
    case StoreBackend::kPostgresLargeObject: {
      ASSIGN_OR_RETURN(auto admin, Admin());
      ASSIGN_OR_RETURN(postgres::Result result,
                       admin->ExecSql("SELECT count(*) FROM pg_largeobject_metadata"));
      return result.Int(0, 0);
    }
  }
  return count;
}

}  // namespace segserve::registry
