// File: server/scheduler/sqlite_job_store_internal.h — helpers shared by the SQLite job
// store's files (sqlite_job_store.cc: schema, rows, queries; sqlite_job_store_leases.cc:
// claims, leases, cancel requests). Not for use outside them.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <string>

#include "server/scheduler/job_store.h"

namespace segserve::scheduler::sqlite_internal {

inline constexpr const char* kColumns =
    "id, kind, state, reason, priority, parent_id, created_ms, started_ms, finished_ms, "
    "spec_json, result_json, progress_json, restarts, last_completed_epoch, "
    "cancel_requested, attempt, owner";

// The fence as a WHERE suffix, with its parameters bound by BindFence.
inline std::string FenceSql(const Fence& fence) {
  std::string sql;
  if (fence.attempt > 0) sql += " AND attempt=? AND state='RUNNING'";
  if (fence.state) sql += " AND state=?";
  return sql;
}

inline int64_t SystemMillisNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t ToMillis(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline TimePoint FromMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

inline std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  return text ? std::string(reinterpret_cast<const char*>(text)) : std::string();
}

// Resets a cached statement when it goes out of scope so it can be reused.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

inline void BindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

}  // namespace segserve::scheduler::sqlite_internal
