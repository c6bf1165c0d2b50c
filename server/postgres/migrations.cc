#include "server/postgres/migrations.h"

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::postgres {
namespace {

constexpr Statement kCreateVersionTable = {"migrations_create",
                                           "CREATE TABLE IF NOT EXISTS schema_version ("
                                           " component TEXT NOT NULL,"
                                           " version INTEGER NOT NULL,"
                                           " name TEXT NOT NULL,"
                                           " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                                           " PRIMARY KEY (component, version))"};
constexpr Statement kCurrentVersion = {
    "migrations_current",
    "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = $1"};
constexpr Statement kRecord = {
    "migrations_record",
    "INSERT INTO schema_version (component, version, name) VALUES ($1, $2, $3)"};
constexpr Statement kLock = {"migrations_lock", "SELECT pg_advisory_xact_lock($1)"};
constexpr Statement kTableExists = {"migrations_table_exists",
                                    "SELECT to_regclass('schema_version') IS NOT NULL"};

// Migrations may rewrite big tables: a longer limit than the per-call one, for this
// transaction only (on the server and for the client-side call deadline).
constexpr const char* kMigrationTimeout = "SET LOCAL statement_timeout = '300s'";

absl::Status Migrate(Connection& c, const std::string& component,
                     const std::vector<Migration>& migrations) {
  RETURN_IF_ERROR(c.ExecSql(kMigrationTimeout).status());
  c.AllowLongStatementsInTransaction(std::chrono::seconds(300));
  RETURN_IF_ERROR(c.Exec(kLock, {std::to_string(kMigrationLockKey)}).status());
  RETURN_IF_ERROR(c.Exec(kCreateVersionTable).status());
  ASSIGN_OR_RETURN(Result current, c.Exec(kCurrentVersion, {component}));
  const int have = static_cast<int>(current.Int(0, 0));
  const int known = migrations.empty() ? 0 : migrations.back().version;
  if (have > known) {
    return absl::FailedPreconditionError(
        absl::StrCat(c.description(), " has schema version ", have, " for '", component,
                     "', newer than this segserve binary knows (", known,
                     "): a newer segserve migrated it; run that version (or newer) instead"));
  }
  for (const Migration& m : migrations) {
    if (m.version <= have) continue;
    absl::Status applied = c.ExecSql(m.sql).status();
    if (!applied.ok()) {
      return absl::Status(applied.code(),
                          absl::StrCat("migration ", m.name, ": ", applied.message()));
    }
    RETURN_IF_ERROR(c.Exec(kRecord, {component, std::to_string(m.version), m.name}).status());
    LOG(INFO) << c.description() << ": applied migration " << component << "/" << m.name;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyMigrations(Connection& connection, const std::string& component,
                             const std::vector<Migration>& migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return absl::InternalError(absl::StrCat("migrations of '", component,
                                              "' are not numbered 1..N: ", migrations[i].name));
    }
  }
  RETURN_IF_ERROR(connection.Begin());
  absl::Status status = Migrate(connection, component, migrations);
  if (status.ok()) status = connection.Commit();
  if (!status.ok()) connection.Rollback();
  return status;
}

absl::StatusOr<int> SchemaVersion(Connection& connection, const std::string& component) {
  ASSIGN_OR_RETURN(Result exists, connection.Exec(kTableExists));
  if (!exists.Bool(0, 0)) return 0;
  ASSIGN_OR_RETURN(Result current, connection.Exec(kCurrentVersion, {component}));
  return static_cast<int>(current.Int(0, 0));
}

}  // namespace segserve::postgres
