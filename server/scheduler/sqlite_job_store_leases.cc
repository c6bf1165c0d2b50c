// The lease side of SqliteJobStore (JobStore::Claim, RenewLease, RequeueExpired,
// RequestCancel). One process owns the file, so a claim is a transaction; lease times are
// the system clock's milliseconds.
#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/scheduler/sqlite_job_store.h"
#include "server/scheduler/sqlite_job_store_internal.h"

namespace segserve::scheduler {

using sqlite_internal::BindText;
using sqlite_internal::ColumnText;
using sqlite_internal::FenceSql;
using sqlite_internal::FromMillis;
using sqlite_internal::kColumns;
using sqlite_internal::ResetOnExit;
using sqlite_internal::SystemMillisNow;
using sqlite_internal::ToMillis;

absl::Status SqliteJobStore::RequestCancel(const JobId& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared("UPDATE jobs SET cancel_requested=1 WHERE id=?"));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, id);
  if (sqlite3_step(stmt) != SQLITE_DONE) return Error("request cancel of " + id);
  if (sqlite3_changes(db_) == 0) return absl::NotFoundError("job " + id + " not found");
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Job>> SqliteJobStore::Claim(const std::string& owner,
                                                         std::chrono::milliseconds lease,
                                                         TimePoint now) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto fail = [&](absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exec("ROLLBACK").IgnoreError();
    return status;
  };
  absl::StatusOr<std::optional<Job>> next = NextRunnableLocked();
  if (!next.ok()) return fail(next.status());
  if (!next->has_value()) {
    Exec("COMMIT").IgnoreError();  // read-only
    return next;
  }
  Job& job = **next;
  job.state = JobState::kRunning;
  job.attempt += 1;
  job.owner = owner;
  job.reason.clear();
  if (job.started == TimePoint{}) job.started = now;
  absl::StatusOr<sqlite3_stmt*> stmt =
      Prepared("UPDATE jobs SET state='RUNNING', attempt=?, owner=?, lease_expires_ms=?, "
               "started_ms=?, reason='' WHERE id=? AND state='QUEUED'");
  if (!stmt.ok()) return fail(stmt.status());
  {
    ResetOnExit reset(*stmt);
    sqlite3_bind_int(*stmt, 1, job.attempt);
    BindText(*stmt, 2, owner);
    sqlite3_bind_int64(*stmt, 3, SystemMillisNow() + lease.count());
    sqlite3_bind_int64(*stmt, 4, ToMillis(job.started));
    BindText(*stmt, 5, job.id);
    if (sqlite3_step(*stmt) != SQLITE_DONE) return fail(Error("claim job " + job.id));
  }
  absl::Status committed = Exec("COMMIT");
  if (!committed.ok()) return fail(committed);
  return next;
}

absl::StatusOr<bool> SqliteJobStore::RenewLease(const JobId& id, int attempt,
                                                std::chrono::milliseconds lease) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared("UPDATE jobs SET lease_expires_ms=? WHERE id=? AND attempt=? AND "
                            "state='RUNNING' RETURNING cancel_requested"));
  ResetOnExit reset(stmt);
  sqlite3_bind_int64(stmt, 1, SystemMillisNow() + lease.count());
  BindText(stmt, 2, id);
  sqlite3_bind_int(stmt, 3, attempt);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const bool cancel = sqlite3_column_int(stmt, 0) != 0;
    if (sqlite3_step(stmt) != SQLITE_DONE) return Error("renew lease of " + id);
    return cancel;
  }
  if (rc != SQLITE_DONE) return Error("renew lease of " + id);
  return NoRowUpdated(id, Fence{attempt, std::nullopt});
}

absl::StatusOr<std::vector<Job>> SqliteJobStore::RequeueExpired(TimePoint now) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      sqlite3_stmt * stmt,
      Prepared(absl::StrCat(
          "UPDATE jobs SET "
          "state=CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END, "
          "restarts=restarts + CASE WHEN cancel_requested THEN 0 ELSE 1 END, "
          "finished_ms=CASE WHEN cancel_requested THEN ? ELSE finished_ms END, "
          "reason=CASE WHEN cancel_requested THEN "
          "'cancelled by request (its worker ' || owner || ' stopped renewing its lease)' "
          "ELSE 'lease of worker ' || owner || ' expired; resumes after epoch ' || "
          "last_completed_epoch END, "
          "owner='' WHERE state='RUNNING' AND kind NOT IN ('SWEEP','EXPERIMENT') AND "
          "lease_expires_ms < ? RETURNING ",
          kColumns)));
  sqlite3_bind_int64(stmt, 1, ToMillis(now));
  sqlite3_bind_int64(stmt, 2, SystemMillisNow());
  return QueryJobs(stmt);
}

}  // namespace segserve::scheduler
