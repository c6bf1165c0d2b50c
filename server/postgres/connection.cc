#include "server/postgres/connection.h"

#include <libpq-fe.h>
#include <libpq/libpq-fs.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/postgres/call_deadline.h"
#include "server/postgres/conninfo.h"

namespace segserve::postgres {
namespace {

std::string Trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// NOTICEs (e.g. "relation already exists, skipping") go to the debug log, not stderr.
void OnNotice(void*, const char* message) { LOG(DEBUG) << "postgres: " << Trimmed(message); }

absl::StatusCode CodeOf(const std::string& sqlstate) {
  if (sqlstate == "23505") return absl::StatusCode::kAlreadyExists;  // unique_violation
  const std::string sqlclass = sqlstate.substr(0, 2);
  // Connection exceptions, too many connections / out of resources, operator intervention
  // (shutdown, cannot connect now, statement/lock timeout = query_canceled), and
  // serialization failures and deadlocks: all transient, worth retrying later.
  if (sqlclass == "08" || sqlclass == "53" || sqlclass == "57" || sqlclass == "40" ||
      sqlstate == "55P03") {
    return absl::StatusCode::kUnavailable;
  }
  // Undefined table/column and friends: a schema this build does not match.
  if (sqlclass == "42") return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInternal;
}

}  // namespace

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

Result::~Result() { PQclear(result_); }

int Result::rows() const { return result_ ? PQntuples(result_) : 0; }

std::string Result::Text(int row, int col) const {
  if (PQgetisnull(result_, row, col)) return "";
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<size_t>(PQgetlength(result_, row, col)));
}

int64_t Result::Int(int row, int col) const {
  return std::strtoll(PQgetvalue(result_, row, col), nullptr, 10);
}

bool Result::Bool(int row, int col) const { return PQgetvalue(result_, row, col)[0] == 't'; }

int64_t Result::affected() const {
  const char* n = PQcmdTuples(result_);
  return n && n[0] ? std::strtoll(n, nullptr, 10) : 0;
}

Connection::Connection(ConnectOptions options)
    : options_(std::move(options)),
      description_(absl::StrCat(options_.what, " ", DescribeConnInfo(options_.conninfo))) {}

Connection::~Connection() { PQfinish(conn_); }

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(ConnectOptions options) {
  RETURN_IF_ERROR(ValidateConnInfo(options.conninfo));
  std::unique_ptr<Connection> connection(new Connection(std::move(options)));
  RETURN_IF_ERROR(connection->Connect());
  return connection;
}

absl::Status Connection::Connect() {
  PQfinish(conn_);
  conn_ = nullptr;
  prepared_.clear();
  call_timed_out_ = false;
  long_statement_timeout_ = std::chrono::milliseconds(0);
  const std::string connect_timeout = std::to_string(options_.connect_timeout_s);
  // A peer that stops answering mid-call (cable pulled, node gone) is given up after the
  // statement timeout plus a margin; statement_timeout alone is enforced by the server.
  const std::string tcp_user_timeout = std::to_string(options_.statement_timeout.count() + 5000);
  // Entries before "dbname" may be overridden by the connection string (it is expanded in
  // place); the password after it wins, but only when one was given.
  std::vector<const char*> keys = {
      "connect_timeout",     "application_name", "keepalives",       "keepalives_idle",
      "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname"};
  std::vector<const char*> values = {
      connect_timeout.c_str(),  options_.application_name.c_str(), "1", "10", "5", "3",
      tcp_user_timeout.c_str(), options_.conninfo.c_str()};
  if (!options_.password.empty()) {
    keys.push_back("password");
    values.push_back(options_.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string why = conn_ ? Trimmed(PQerrorMessage(conn_)) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    next_attempt_ = std::chrono::steady_clock::now() + options_.reconnect_backoff;
    last_connect_error_ =
        absl::UnavailableError(absl::StrCat(description_, " is unreachable: ", why));
    if (options_.on_connection) options_.on_connection(false);
    return last_connect_error_;
  }
  PQsetNoticeProcessor(conn_, OnNotice, nullptr);
  const std::string timeout_ms = std::to_string(options_.statement_timeout.count());
  absl::StatusOr<Result> set = ExecSql(absl::StrCat(
      "SET statement_timeout = ", timeout_ms, "; SET lock_timeout = ", timeout_ms,
      "; SET idle_in_transaction_session_timeout = ", options_.statement_timeout.count() * 4));
  if (!set.ok()) {
    PQfinish(conn_);
    conn_ = nullptr;
    last_connect_error_ = set.status();
    return set.status();
  }
  last_connect_error_ = absl::OkStatus();
  if (options_.on_connection) options_.on_connection(true);
  return absl::OkStatus();
}

bool Connection::Lost() const {
  return conn_ == nullptr || call_timed_out_ || PQstatus(conn_) == CONNECTION_BAD;
}

std::chrono::milliseconds Connection::CallTimeout() const {
  return std::max(options_.statement_timeout, long_statement_timeout_) + kCallMargin;
}

template <typename F>
auto Connection::Guarded(F&& call) {
  CallDeadline deadline(PQsocket(conn_), CallTimeout());
  auto result = call();
  if (deadline.Disarm()) call_timed_out_ = true;
  return result;
}

absl::Status Connection::EnsureConnected() {
  if (!Lost() && PQtransactionStatus(conn_) == PQTRANS_IDLE) {
    // Reads what the server sent while we were idle: a connection it closed (restart,
    // idle timeout, pg_terminate_backend) shows up here instead of failing the next call.
    PQconsumeInput(conn_);
  }
  if (!Lost()) return absl::OkStatus();
  if (std::chrono::steady_clock::now() < next_attempt_) return last_connect_error_;
  LOG(WARNING) << description_ << ": connection lost; reconnecting";
  RETURN_IF_ERROR(Connect());
  LOG(INFO) << description_ << ": reconnected";
  return absl::OkStatus();
}

absl::Status Connection::ErrorOf(const pg_result* result, const std::string& what) {
  if (Lost()) {
    if (options_.on_connection) options_.on_connection(false);
    std::string why = call_timed_out_ ? absl::StrCat("no answer within ", CallTimeout().count(),
                                                     " ms; the connection was dropped")
                                      : Trimmed(PQerrorMessage(conn_));
    return absl::UnavailableError(absl::StrCat(description_, ": ", what, ": connection lost (", why,
                                               "); reconnecting on the next call"));
  }
  const char* sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = sqlstate ? sqlstate : "";
  std::string message = Trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (state == "57014") {
    message = absl::StrCat("timed out after ", options_.statement_timeout.count(),
                           " ms (statement_timeout): ", message);
  }
  return absl::Status(CodeOf(state),
                      absl::StrCat(description_, ": ", what, ": ", message, " [SQLSTATE ",
                                   state.empty() ? "none" : state, "]"));
}

template <typename F>
absl::StatusOr<Result> Connection::Observed(F&& run) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Result> result = run();
  if (options_.on_query)
    options_.on_query(std::chrono::steady_clock::now() - start, result.status());
  return result;
}

absl::StatusOr<Result> Connection::Exec(const Statement& statement, const Params& params) {
  return Observed([&] { return ExecPrepared(statement, params); });
}

absl::StatusOr<Result> Connection::ExecSql(const std::string& sql) {
  return Observed([&] { return ExecText(sql); });
}

absl::StatusOr<Result> Connection::ExecPrepared(const Statement& statement, const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  for (int attempt = 0;; ++attempt) {
    RETURN_IF_ERROR(EnsureConnected());
    const bool in_transaction = PQtransactionStatus(conn_) != PQTRANS_IDLE;
    if (prepared_.count(statement.name) == 0) {
      PGresult* raw_prepared = Guarded([&] {
        return PQprepare(conn_, statement.name, statement.sql, static_cast<int>(params.size()),
                         nullptr);
      });
      Result prepared(raw_prepared);
      if (PQresultStatus(raw_prepared) != PGRES_COMMAND_OK) {
        if (Lost() && !in_transaction && attempt == 0) continue;
        return ErrorOf(raw_prepared, absl::StrCat("prepare ", statement.name));
      }
      prepared_.insert(statement.name);
    }
    PGresult* raw = Guarded([&] {
      return PQexecPrepared(conn_, statement.name, static_cast<int>(values.size()), values.data(),
                            nullptr, nullptr, /*resultFormat=*/0);
    });
    Result result(raw);
    ExecStatusType st = PQresultStatus(raw);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return result;
    if (Lost() && !in_transaction && attempt == 0) continue;
    return ErrorOf(raw, statement.name);
  }
}

absl::StatusOr<Result> Connection::ExecText(const std::string& sql) {
  // Never reconnects: a COMMIT sent on a new session would "succeed" with nothing to commit.
  if (Lost()) return ErrorOf(nullptr, sql.substr(0, 40));
  PGresult* raw = Guarded([&] { return PQexec(conn_, sql.c_str()); });
  Result result(raw);
  ExecStatusType st = PQresultStatus(raw);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return result;
  return ErrorOf(raw, sql.substr(0, 40));
}

absl::Status Connection::Begin() {
  RETURN_IF_ERROR(EnsureConnected());
  absl::Status begun = ExecSql("BEGIN").status();
  if (begun.ok() || !Lost()) return begun;
  // Lost while idle without our noticing: nothing was sent that could have taken effect.
  RETURN_IF_ERROR(EnsureConnected());
  return ExecSql("BEGIN").status();
}

absl::Status Connection::Commit() {
  absl::Status committed = ExecSql("COMMIT").status();
  long_statement_timeout_ = std::chrono::milliseconds(0);
  return committed;
}

void Connection::Rollback() {
  long_statement_timeout_ = std::chrono::milliseconds(0);
  if (Lost()) return;
  PQclear(Guarded([&] { return PQexec(conn_, "ROLLBACK"); }));
}

}  // namespace segserve::postgres

namespace segserve::postgres {

absl::Status Connection::LargeObjectError(const std::string& what, uint32_t oid) {
  const std::string call = absl::StrCat(what, " of large object ", oid);
  if (Lost()) return ErrorOf(nullptr, call);
  const std::string message = Trimmed(PQerrorMessage(conn_));
  if (message.find("does not exist") != std::string::npos) {
    return absl::NotFoundError(absl::StrCat(description_, ": ", call, ": ", message));
  }
  if (message.find("statement timeout") != std::string::npos ||
      message.find("canceling statement") != std::string::npos) {
    return absl::UnavailableError(absl::StrCat(description_, ": ", call, ": timed out after ",
                                               options_.statement_timeout.count(),
                                               " ms (statement_timeout): ", message));
  }
  return absl::InternalError(absl::StrCat(description_, ": ", call, ": ", message));
}

absl::StatusOr<uint32_t> Connection::CreateLargeObject() {
  if (Lost()) return ErrorOf(nullptr, "lo_create");
  const auto start = std::chrono::steady_clock::now();
  const Oid oid = Guarded([&] { return lo_create(conn_, InvalidOid); });
  absl::Status status = oid == InvalidOid ? LargeObjectError("create", 0) : absl::OkStatus();
  if (options_.on_query) options_.on_query(std::chrono::steady_clock::now() - start, status);
  if (!status.ok()) return status;
  return static_cast<uint32_t>(oid);
}

absl::StatusOr<int> Connection::OpenLargeObject(uint32_t oid, int mode, const std::string& what) {
  if (Lost()) return ErrorOf(nullptr, absl::StrCat(what, " of large object ", oid));
  const int fd = Guarded([&] { return lo_open(conn_, static_cast<Oid>(oid), mode); });
  if (fd < 0) return LargeObjectError(what, oid);
  return fd;
}

absl::Status Connection::WriteLargeObject(uint32_t oid, std::string_view data) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(int fd, OpenLargeObject(oid, INV_WRITE, "write"));
    for (size_t offset = 0; offset < data.size(); offset += kLargeObjectChunk) {
      const size_t n = std::min(kLargeObjectChunk, data.size() - offset);
      if (Guarded([&] { return lo_write(conn_, fd, data.data() + offset, n); }) !=
          static_cast<int>(n)) {
        return LargeObjectError("write", oid);
      }
    }
    if (Guarded([&] { return lo_close(conn_, fd); }) != 0) return LargeObjectError("close", oid);
    return absl::OkStatus();
  }();
  if (options_.on_query) options_.on_query(std::chrono::steady_clock::now() - start, status);
  return status;
}

absl::Status Connection::ReadLargeObject(
    uint32_t oid, const std::function<absl::Status(std::string_view)>& sink) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(int fd, OpenLargeObject(oid, INV_READ, "read"));
    std::string buffer(kLargeObjectChunk, '\0');
    for (;;) {
      const int n = Guarded([&] { return lo_read(conn_, fd, buffer.data(), buffer.size()); });
      if (n < 0) return LargeObjectError("read", oid);
      if (n == 0) break;
      RETURN_IF_ERROR(sink(std::string_view(buffer.data(), static_cast<size_t>(n))));
    }
    if (Guarded([&] { return lo_close(conn_, fd); }) != 0) return LargeObjectError("close", oid);
    return absl::OkStatus();
  }();
  if (options_.on_query) options_.on_query(std::chrono::steady_clock::now() - start, status);
  return status;
}

absl::Status Connection::UnlinkLargeObject(uint32_t oid) {
  if (Lost()) return ErrorOf(nullptr, absl::StrCat("unlink of large object ", oid));
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = Guarded([&] { return lo_unlink(conn_, static_cast<Oid>(oid)); }) < 0
                            ? LargeObjectError("unlink", oid)
                            : absl::OkStatus();
  if (options_.on_query) options_.on_query(std::chrono::steady_clock::now() - start, status);
  return status;
}

}  // namespace segserve::postgres
