// File: server/training/postgres_run_checkpoints.h — training checkpoints in PostgreSQL large
// objects (run_checkpoints.h; table run_files, migrations/postgres/, component "runs").
// Save writes each file in 1 MiB chunks inside one transaction that ends by locking the
// job's row (`jobs`, the job store's table in the same database) FOR SHARE and checking it
// is RUNNING under the writer's attempt, then replaces the rows and unlinks the objects they
// pointed to: a fenced writer's transaction rolls back with its new objects, and a claim by
// a successor waits for the lock, so it reads either the old files or the new ones, whole.
// Restore streams each object into a temporary file next to its target, hashing it, and
// renames it into place only when the digest matches. One connection, guarded by a mutex.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/postgres/connection.h"
#include "server/postgres/migrations.h"
#include "server/training/run_checkpoints.h"

namespace segserve::training {

class PostgresRunCheckpoints final : public RunCheckpoints {
 public:
  static constexpr const char* kComponent = "runs";

  // Connects and migrates. Errors as PostgresJobStore::Open.
  static absl::StatusOr<std::unique_ptr<RunCheckpoints>> Open(postgres::ConnectOptions database);
  // The embedded migrations, in version order (generated from migrations/postgres/).
  static const std::vector<postgres::Migration>& Migrations();

  absl::Status Restore(const std::string& job_id, const std::string& run_dir) override;
  absl::Status Save(const std::string& job_id, int attempt, const std::string& run_dir,
                    const std::vector<std::string>& files) override;
  absl::Status Remove(const std::string& job_id) override;
  std::string Describe() const override;

 private:
  explicit PostgresRunCheckpoints(std::unique_ptr<postgres::Connection> db);
  // Runs `body` in a transaction; rolls back when it or the commit fails.
  absl::Status InTransaction(const std::function<absl::Status(postgres::Connection& db)>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);

  const std::string description_;
  absl::Mutex db_mu_;
  std::unique_ptr<postgres::Connection> db_ ABSL_GUARDED_BY(db_mu_);
};

}  // namespace segserve::training
