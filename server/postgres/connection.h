// File: server/postgres/connection.h — one libpq connection for a PostgreSQL-backed store:
// RAII over PGconn/PGresult, prepared statements (prepared once per session, again after a
// reconnect), a timeout on everything (connect_timeout, statement/lock timeouts set per
// session, TCP user timeout and keepalives for a peer that stops answering, and a client-side
// deadline on every call, call_deadline.h, for a peer that acknowledges but never answers),
// and reconnect after a dropped connection with Unavailable naming the database meanwhile.
//
// Why libpq and not libpqxx (Debian's 6.4): libpqxx reports every error as a C++
// exception, and our interfaces carry absl::Status (STYLE.md: no exceptions across our
// own interfaces), so every call would need a try/catch; 6.4 predates C++17 idioms
// (its API is C++11 with its own string_view shims) and is one more shared library in
// the images. libpq is the C API every PostgreSQL tool uses, stable across major
// versions; the RAII this file adds is ~30 lines.
//
// Not thread-safe: a store guards its Connection with its own mutex (one connection per
// store; the scheduler lets one job-store call in at a time anyway).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct pg_conn;
struct pg_result;

namespace segserve::postgres {

struct ConnectOptions {
  // A postgresql:// URL or key=value pairs (ValidateConnInfo: no password in it).
  std::string conninfo;
  // From --database_password_file; empty: libpq's own sources (PGPASSFILE, ~/.pgpass).
  std::string password;
  // Connect (and reconnect) attempts give up after this (libpq's minimum is 2 s).
  int connect_timeout_s = 5;
  // Every statement: the server cancels it after this; also the lock wait limit.
  std::chrono::milliseconds statement_timeout{5000};
  // After a failed reconnect, calls answer Unavailable at once for this long instead of
  // each waiting for another connect attempt.
  std::chrono::milliseconds reconnect_backoff{1000};
  // Shown in pg_stat_activity.
  std::string application_name = "segserve";
  // Names the database in messages, e.g. "job database".
  std::string what = "database";
  // Observers (may be null), e.g. for segserve_database_up and the query latency histogram
  // (database_metrics.h): after every statement, its duration and outcome; after every
  // connect attempt and every lost connection, whether the database is reachable.
  std::function<void(std::chrono::steady_clock::duration elapsed, const absl::Status& status)>
      on_query;
  std::function<void(bool up)> on_connection;
};

// An owned PGresult.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result) : result_(result) {}
  Result(Result&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  ~Result();
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const;
  // Text of a column ("" for NULL).
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t affected() const;

 private:
  pg_result* result_ = nullptr;
};

// A named statement; parameters are sent as text ($1, $2, ...; nullopt = NULL).
struct Statement {
  const char* name;
  const char* sql;
};
using Params = std::vector<std::optional<std::string>>;

class Connection {
 public:
  // Connects and sets the session's timeouts. Unavailable when the server cannot be
  // reached (the message names the database, never its password), InvalidArgument for a
  // bad connection string.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(ConnectOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs a prepared statement. A statement that finds the connection lost outside a
  // transaction is retried once on a new connection (single statements here are
  // idempotent); inside one, the error is returned and the transaction is gone.
  // Errors: Unavailable (connection lost, timeout, server shutting down), AlreadyExists
  // (unique violation), FailedPrecondition (schema problems), Internal (the rest).
  absl::StatusOr<Result> Exec(const Statement& statement, const Params& params = {});
  // Runs SQL text with no parameters (may hold several statements: migrations, BEGIN).
  absl::StatusOr<Result> ExecSql(const std::string& sql);

  // BEGIN / COMMIT / ROLLBACK. Rollback ignores errors (a lost connection has none left).
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();

  // Every call is given up on the client side (the connection dropped, Unavailable) when no
  // answer came within the statement timeout plus kCallMargin: the server's own timeout
  // answers first whenever its answer can arrive. For the rest of the current transaction,
  // calls may take `statement_timeout` instead (for a caller that raised it with SET LOCAL,
  // e.g. migrations).
  static constexpr std::chrono::milliseconds kCallMargin{5000};
  void AllowLongStatementsInTransaction(std::chrono::milliseconds statement_timeout) {
    long_statement_timeout_ = statement_timeout;
  }

  // Large objects (server/registry's blob backend). All must run inside a transaction
  // (Begin): a large object created in a transaction that does not commit is gone with it,
  // and one unlinked in a transaction that commits is gone for good. Data moves in chunks
  // of at most kLargeObjectChunk bytes, each one server call under the statement timeout,
  // so no call holds a copy of the whole object.
  static constexpr size_t kLargeObjectChunk = 1 << 20;
  // A new, empty large object; its oid.
  absl::StatusOr<uint32_t> CreateLargeObject();
  // Writes `data` to large object `oid` from offset 0.
  absl::Status WriteLargeObject(uint32_t oid, std::string_view data);
  // Reads large object `oid` from the start, handing each chunk to `sink` (which may stop
  // the read by returning an error). NotFound when the object does not exist.
  absl::Status ReadLargeObject(uint32_t oid,
                               const std::function<absl::Status(std::string_view)>& sink);
  // Removes large object `oid`; NotFound when it does not exist.
  absl::Status UnlinkLargeObject(uint32_t oid);

  // "job database host=... dbname=..." for messages.
  const std::string& description() const { return description_; }
  const ConnectOptions& options() const { return options_; }

 private:
  explicit Connection(ConnectOptions options);
  // Connected, or reconnects (at most once per reconnect_backoff); Unavailable otherwise.
  absl::Status EnsureConnected();
  absl::Status Connect();
  absl::Status ErrorOf(const pg_result* result, const std::string& what);
  absl::StatusOr<Result> ExecPrepared(const Statement& statement, const Params& params);
  absl::StatusOr<Result> ExecText(const std::string& sql);
  template <typename F>
  absl::StatusOr<Result> Observed(F&& run);
  bool Lost() const;
  // Runs a blocking libpq call under the client-side deadline; a call cut off by it leaves
  // the connection lost (call_timed_out_).
  template <typename F>
  auto Guarded(F&& call);
  std::chrono::milliseconds CallTimeout() const;
  // The error of a failed large-object call `what` (libpq reports it in PQerrorMessage).
  absl::Status LargeObjectError(const std::string& what, uint32_t oid);
  // lo_open of `oid` in `mode` (INV_READ / INV_WRITE); its descriptor.
  absl::StatusOr<int> OpenLargeObject(uint32_t oid, int mode, const std::string& what);

  const ConnectOptions options_;
  const std::string description_;
  pg_conn* conn_ = nullptr;
  std::set<std::string> prepared_;  // statement names prepared in this session
  bool call_timed_out_ = false;     // a call's deadline shut the socket down: reconnect
  std::chrono::milliseconds long_statement_timeout_{0};  // AllowLongStatementsInTransaction
  std::chrono::steady_clock::time_point next_attempt_{};
  absl::Status last_connect_error_;
};

}  // namespace segserve::postgres
