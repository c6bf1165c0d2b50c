// File: server/postgres/migrations.h — versioned schema migrations for the PostgreSQL
// backends. Each component (e.g. "jobs") has numbered SQL files (NNNN_name.sql, embedded
// into the binary at build time, so a server needs no files at run time). At start the
// missing ones are applied in order, in ONE transaction that first takes
// pg_advisory_xact_lock: ten replicas starting at once migrate once, the others wait for
// the lock and then find nothing to do. The table schema_version records (component,
// version, name, applied_at) per applied file.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/postgres/connection.h"

namespace segserve::postgres {

struct Migration {
  int version = 0;   // 1, 2, ... (the file name's number)
  std::string name;  // the file name, e.g. "0001_jobs.sql"
  std::string sql;
};

// The advisory lock key every segserve migration takes ("segserve" in ASCII).
inline constexpr int64_t kMigrationLockKey = 0x7365677365727665;

// Brings `component` up to migrations.back().version (migrations sorted by version,
// numbered 1..N). Errors: FailedPrecondition when the database already has a newer
// version than this binary knows (the message names both versions: upgrade the binary;
// nothing is changed), the connection's errors otherwise (the transaction is rolled back).
absl::Status ApplyMigrations(Connection& connection, const std::string& component,
                             const std::vector<Migration>& migrations);

// The version of `component` recorded in the database (0 when none).
absl::StatusOr<int> SchemaVersion(Connection& connection, const std::string& component);

}  // namespace segserve::postgres
