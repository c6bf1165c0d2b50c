// File: tests/testing/postgres_server.h — a private PostgreSQL 15 for tests: initdb into a
// temp dir, postgres on a Unix socket in that dir (no TCP, no systemd), trust auth for the
// role "segserve". As root (CI) initdb/postgres run as the `postgres` user through runuser,
// as docs TOOLING.md shows. One instance per test binary (SharedPostgresServer), a fresh
// database per test (CreateDatabase): ~1 s per binary, ~50 ms per test.
//
// A watchdog process (a shell blocked reading a pipe only this process holds) stops the
// server and removes the dir when this process ends, normally or not (a crashed or killed
// test binary leaves no postgres behind).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/postgres/connection.h"

namespace segserve::testing {

class PostgresServer {
 public:
  // FailedPrecondition naming scripts/install-deps.sh when PostgreSQL's server binaries
  // are missing (SEGSERVE_PG_BINDIR overrides /usr/lib/postgresql/15/bin).
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The Unix socket's directory (libpq's host=).
  const std::string& socket_dir() const { return dir_; }
  // key=value connection string for `dbname` as the role segserve.
  std::string ConnInfo(const std::string& dbname) const;
  // A new empty database; returns its name.
  absl::StatusOr<std::string> CreateDatabase();

  // Stops the server (pg_ctl -m fast) / starts it again on the same data: for tests of a
  // database restart. Connections see the restart as a dropped connection.
  absl::Status StopServer();
  absl::Status StartServer();

 private:
  PostgresServer() = default;
  absl::Status RunAsPostgres(const std::string& args, const std::string& what);

  std::string bindir_;
  std::string dir_;
  bool as_root_ = false;
  int watchdog_fd_ = -1;
  pid_t watchdog_pid_ = -1;
  int databases_ = 0;
  std::unique_ptr<postgres::Connection> admin_;
};

// The instance every test of this process shares, started on first use; an error (e.g.
// the binaries are missing) is returned to every caller, so each test fails saying why.
absl::StatusOr<PostgresServer*> SharedPostgresServer();

// A new, empty database on SharedPostgresServer(); its connection string (ConnInfo).
absl::StatusOr<std::string> NewSharedDatabase();

}  // namespace segserve::testing
