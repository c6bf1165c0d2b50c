#include "server/scheduler/sqlite_job_store.h"

#include "server/scheduler/sqlite_job_store_internal.h"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::scheduler {
namespace {

using sqlite_internal::BindText;
using sqlite_internal::ColumnText;
using sqlite_internal::FenceSql;
using sqlite_internal::FromMillis;
using sqlite_internal::kColumns;
using sqlite_internal::ResetOnExit;
using sqlite_internal::SystemMillisNow;
using sqlite_internal::ToMillis;

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order (FIFO, newest first)
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 0,
  parent_id TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL DEFAULT 0,  -- Unix milliseconds; 0 = not reached
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  spec_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT NOT NULL DEFAULT '{}',
  progress_json TEXT NOT NULL DEFAULT '{}',
  restarts INTEGER NOT NULL DEFAULT 0,
  last_completed_epoch INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_runnable ON jobs(state, priority DESC, seq);
CREATE INDEX jobs_parent ON jobs(parent_id, seq);
)sql";

// Leases (JobStore::Claim): the attempt is the fencing token of a run.
constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER NOT NULL DEFAULT 0;
)sql";

absl::Status StatusFromCode(int code, const std::string& message) {
  switch (code & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = absl::StrCat("cannot open job database ", path, ": ",
                                       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return StatusFromCode(rc, message);
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(path, db));
  RETURN_IF_ERROR(store->Init());
  return store;
}

SqliteJobStore::~SqliteJobStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status SqliteJobStore::Error(const std::string& what) {
  return StatusFromCode(
      sqlite3_extended_errcode(db_),
      absl::StrCat("job database ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteJobStore::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = absl::StrCat("job database ", path_, ": ", sql.substr(0, 40), ": ",
                                       err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return StatusFromCode(rc, message);
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3_stmt*> SqliteJobStore::Prepared(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK) {
    return Error("prepare '" + sql + "'");
  }
  statements_.emplace(sql, stmt);
  return stmt;
}

absl::Status SqliteJobStore::Init() {
  absl::MutexLock lock(&mu_);
  sqlite3_busy_timeout(db_, 5000);
  // Integrity first, before anything writes: a damaged file must be reported, not used.
  {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA quick_check", -1, &stmt, nullptr);
    std::string problems;
    if (rc == SQLITE_OK) {
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        std::string line = ColumnText(stmt, 0);
        if (line != "ok") absl::StrAppend(&problems, problems.empty() ? "" : "; ", line);
      }
    }
    int code = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db_);
    std::string errmsg = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (code != SQLITE_OK && (code & 0xff) != SQLITE_CORRUPT && (code & 0xff) != SQLITE_NOTADB) {
      return StatusFromCode(code, absl::StrCat("job database ", path_, ": ", errmsg));
    }
    if (code != SQLITE_OK || !problems.empty()) {
      return absl::DataLossError(absl::StrCat(
          "job database ", path_, " is corrupt (", problems.empty() ? errmsg : problems,
          "); move it aside to start with an empty job history, or restore it from a "
          "backup"));
    }
  }
  RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  ASSIGN_OR_RETURN(sqlite3_stmt * version_stmt, Prepared("PRAGMA user_version"));
  int version = 0;
  {
    ResetOnExit reset(version_stmt);
    if (sqlite3_step(version_stmt) != SQLITE_ROW) return Error("read user_version");
    version = sqlite3_column_int(version_stmt, 0);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job database ", path_, " has schema version ", version, "; this build knows up to ",
        kSchemaVersion, " (written by a newer segserve?)"));
  }
  if (version < kSchemaVersion) {
    RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    absl::Status status;
    if (version < 1) status = Exec(kSchemaV1);
    if (status.ok() && version < 2) status = Exec(kSchemaV2);
    if (status.ok()) status = Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion));
    if (status.ok()) status = Exec("COMMIT");
    if (!status.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return status;
    }
    LOG(INFO) << (version == 0 ? "created" : "migrated") << " job database " << path_
              << " (schema " << kSchemaVersion << ")";
  }
  return absl::OkStatus();
}

absl::Status SqliteJobStore::InsertOne(const Job& job) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat("INSERT INTO jobs (", kColumns,
                                         ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, job.id);
  BindText(stmt, 2, JobKindName(job.kind));
  BindText(stmt, 3, JobStateName(job.state));
  BindText(stmt, 4, job.reason);
  sqlite3_bind_int(stmt, 5, job.priority);
  BindText(stmt, 6, job.parent_id);
  sqlite3_bind_int64(stmt, 7, ToMillis(job.created));
  sqlite3_bind_int64(stmt, 8, ToMillis(job.started));
  sqlite3_bind_int64(stmt, 9, ToMillis(job.finished));
  BindText(stmt, 10, job.spec_json);
  BindText(stmt, 11, job.result_json);
  BindText(stmt, 12, job.progress.ToJson());
  sqlite3_bind_int(stmt, 13, job.restarts);
  sqlite3_bind_int(stmt, 14, job.last_completed_epoch);
  sqlite3_bind_int(stmt, 15, job.cancel_requested ? 1 : 0);
  sqlite3_bind_int(stmt, 16, job.attempt);
  BindText(stmt, 17, job.owner);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError("job " + job.id + " already exists");
  }
  if (rc != SQLITE_DONE) return Error("insert job " + job.id);
  return absl::OkStatus();
}

absl::Status SqliteJobStore::Insert(const std::vector<Job>& jobs) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  for (const Job& job : jobs) {
    absl::Status status = InsertOne(job);
    if (!status.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return status;
    }
  }
  // A COMMIT that fails (SQLITE_FULL on a full disk) may leave the transaction open; end
  // it, or every later BEGIN would fail until a restart.
  absl::Status committed = Exec("COMMIT");
  if (!committed.ok()) Exec("ROLLBACK").IgnoreError();
  return committed;
}

absl::Status SqliteJobStore::NoRowUpdated(const JobId& id, const Fence& fence) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared("SELECT state, attempt FROM jobs WHERE id=?"));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, id);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return absl::NotFoundError("job " + id + " not found");
  if (rc != SQLITE_ROW) return Error("read job " + id);
  return absl::AbortedError(absl::StrCat(
      "job ", id, " changed under this write: it is ", ColumnText(stmt, 0), " attempt ",
      sqlite3_column_int(stmt, 1), ", the write expected ",
      fence.attempt > 0 ? absl::StrCat("RUNNING attempt ", fence.attempt)
                        : std::string(fence.state ? JobStateName(*fence.state) : "?"),
      " (the run lost its lease)"));
}

absl::Status SqliteJobStore::Update(const Job& job, const Fence& fence) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat(
                       "UPDATE jobs SET state=?, reason=?, started_ms=?, finished_ms=?, "
                       "result_json=?, progress_json=?, restarts=?, last_completed_epoch=?, "
                       "cancel_requested=(cancel_requested OR ?), priority=?, owner=? WHERE id=?",
                       FenceSql(fence))));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, JobStateName(job.state));
  BindText(stmt, 2, job.reason);
  sqlite3_bind_int64(stmt, 3, ToMillis(job.started));
  sqlite3_bind_int64(stmt, 4, ToMillis(job.finished));
  BindText(stmt, 5, job.result_json);
  BindText(stmt, 6, job.progress.ToJson());
  sqlite3_bind_int(stmt, 7, job.restarts);
  sqlite3_bind_int(stmt, 8, job.last_completed_epoch);
  sqlite3_bind_int(stmt, 9, job.cancel_requested ? 1 : 0);
  sqlite3_bind_int(stmt, 10, job.priority);
  BindText(stmt, 11, job.owner);
  BindText(stmt, 12, job.id);
  int index = 13;
  if (fence.attempt > 0) sqlite3_bind_int(stmt, index++, fence.attempt);
  if (fence.state) BindText(stmt, index++, JobStateName(*fence.state));
  if (sqlite3_step(stmt) != SQLITE_DONE) return Error("update job " + job.id);
  if (sqlite3_changes(db_) == 0) return NoRowUpdated(job.id, fence);
  return absl::OkStatus();
}

absl::Status SqliteJobStore::UpdateProgress(const JobId& id, const JobProgress& progress,
                                            int attempt) {
  absl::MutexLock lock(&mu_);
  const Fence fence{attempt, std::nullopt};
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat("UPDATE jobs SET progress_json=? WHERE id=?",
                                         FenceSql(fence))));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, progress.ToJson());
  BindText(stmt, 2, id);
  if (attempt > 0) sqlite3_bind_int(stmt, 3, attempt);
  if (sqlite3_step(stmt) != SQLITE_DONE) return Error("update progress of " + id);
  if (sqlite3_changes(db_) == 0) return NoRowUpdated(id, fence);
  return absl::OkStatus();
}

absl::Status SqliteJobStore::UpdateLastCompletedEpoch(const JobId& id, int epoch, int attempt) {
  absl::MutexLock lock(&mu_);
  const Fence fence{attempt, std::nullopt};
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat("UPDATE jobs SET last_completed_epoch=? WHERE id=?",
                                         FenceSql(fence))));
  ResetOnExit reset(stmt);
  sqlite3_bind_int(stmt, 1, epoch);
  BindText(stmt, 2, id);
  if (attempt > 0) sqlite3_bind_int(stmt, 3, attempt);
  if (sqlite3_step(stmt) != SQLITE_DONE) return Error("update epoch of " + id);
  if (sqlite3_changes(db_) == 0) return NoRowUpdated(id, fence);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Job>> SqliteJobStore::QueryJobs(sqlite3_stmt* stmt) {
  ResetOnExit reset(stmt);
  std::vector<Job> jobs;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Job job;
    job.id = ColumnText(stmt, 0);
    ASSIGN_OR_RETURN(job.kind, ParseJobKind(ColumnText(stmt, 1)));
    ASSIGN_OR_RETURN(job.state, ParseJobState(ColumnText(stmt, 2)));
    job.reason = ColumnText(stmt, 3);
    job.priority = sqlite3_column_int(stmt, 4);
    job.parent_id = ColumnText(stmt, 5);
    job.created = FromMillis(sqlite3_column_int64(stmt, 6));
    job.started = FromMillis(sqlite3_column_int64(stmt, 7));
    job.finished = FromMillis(sqlite3_column_int64(stmt, 8));
    job.spec_json = ColumnText(stmt, 9);
    job.result_json = ColumnText(stmt, 10);
    ASSIGN_OR_RETURN(job.progress, JobProgress::FromJson(ColumnText(stmt, 11)));
    job.restarts = sqlite3_column_int(stmt, 12);
    job.last_completed_epoch = sqlite3_column_int(stmt, 13);
    job.cancel_requested = sqlite3_column_int(stmt, 14) != 0;
    job.attempt = sqlite3_column_int(stmt, 15);
    job.owner = ColumnText(stmt, 16);
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) return Error("query jobs");
  return jobs;
}

absl::Status SqliteJobStore::FillChildIds(Job& job) {
  if (!IsParentKind(job.kind)) return absl::OkStatus();
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared("SELECT id FROM jobs WHERE parent_id=? ORDER BY seq"));
  ResetOnExit reset(stmt);
  BindText(stmt, 1, job.id);
  job.child_ids.clear();
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) job.child_ids.push_back(ColumnText(stmt, 0));
  if (rc != SQLITE_DONE) return Error("query children of " + job.id);
  return absl::OkStatus();
}

absl::StatusOr<Job> SqliteJobStore::Get(const JobId& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE id=?")));
  BindText(stmt, 1, id);
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(stmt));
  if (jobs.empty()) return absl::NotFoundError("job '" + id + "' not found");
  RETURN_IF_ERROR(FillChildIds(jobs[0]));
  return std::move(jobs[0]);
}

absl::StatusOr<std::vector<Job>> SqliteJobStore::List(const JobFilter& filter) {
  absl::MutexLock lock(&mu_);
  // The WHERE clause depends only on which filters are present, so the number of
  // distinct cached statements stays small.
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE 1");
  if (!filter.states.empty()) {
    sql += " AND state IN (";
    for (size_t i = 0; i < filter.states.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  }
  if (filter.kind) sql += " AND kind=?";
  if (filter.parent_id) sql += " AND parent_id=?";
  if (filter.finished_before) sql += " AND finished_ms>0 AND finished_ms<=?";
  sql += " ORDER BY seq DESC LIMIT ?";
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepared(sql));
  int index = 1;
  for (JobState s : filter.states) BindText(stmt, index++, JobStateName(s));
  if (filter.kind) BindText(stmt, index++, JobKindName(*filter.kind));
  if (filter.parent_id) BindText(stmt, index++, *filter.parent_id);
  if (filter.finished_before) sqlite3_bind_int64(stmt, index++, ToMillis(*filter.finished_before));
  sqlite3_bind_int(stmt, index, std::clamp(filter.limit, 1, 1000));
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(stmt));
  for (Job& job : jobs) RETURN_IF_ERROR(FillChildIds(job));
  return jobs;
}

absl::StatusOr<std::optional<Job>> SqliteJobStore::NextRunnable() {
  absl::MutexLock lock(&mu_);
  return NextRunnableLocked();
}

absl::StatusOr<std::optional<Job>> SqliteJobStore::NextRunnableLocked() {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared(absl::StrCat(
                       "SELECT ", kColumns,
                       " FROM jobs WHERE state='QUEUED' AND kind NOT IN ('SWEEP','EXPERIMENT') "
                       "ORDER BY priority DESC, seq ASC LIMIT 1")));
  ASSIGN_OR_RETURN(std::vector<Job> jobs, QueryJobs(stmt));
  if (jobs.empty()) return std::optional<Job>();
  return std::optional<Job>(std::move(jobs[0]));
}

absl::StatusOr<std::vector<Job>> SqliteJobStore::Children(const JobId& parent_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      sqlite3_stmt * stmt,
      Prepared(absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE parent_id=? ORDER BY seq")));
  BindText(stmt, 1, parent_id);
  return QueryJobs(stmt);
}

absl::StatusOr<std::map<JobState, int64_t>> SqliteJobStore::CountByState() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   Prepared("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  ResetOnExit reset(stmt);
  std::map<JobState, int64_t> counts;
  for (JobState s : kAllJobStates) counts[s] = 0;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    ASSIGN_OR_RETURN(JobState state, ParseJobState(ColumnText(stmt, 0)));
    counts[state] = sqlite3_column_int64(stmt, 1);
  }
  if (rc != SQLITE_DONE) return Error("count jobs");
  return counts;
}

absl::StatusOr<int64_t> SqliteJobStore::CountRunnableQueued() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      sqlite3_stmt * stmt,
      Prepared(
          "SELECT COUNT(*) FROM jobs WHERE state='QUEUED' AND kind NOT IN ('SWEEP','EXPERIMENT')"));
  ResetOnExit reset(stmt);
  if (sqlite3_step(stmt) != SQLITE_ROW) return Error("count queued jobs");
  return sqlite3_column_int64(stmt, 0);
}

absl::Status SqliteJobStore::Delete(const std::vector<JobId>& ids) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepared("DELETE FROM jobs WHERE id=?"));
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  for (const JobId& id : ids) {
    ResetOnExit reset(stmt);
    BindText(stmt, 1, id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      absl::Status status = Error("delete job " + id);
      Exec("ROLLBACK").IgnoreError();
      return status;
    }
  }
  absl::Status committed = Exec("COMMIT");
  if (!committed.ok()) Exec("ROLLBACK").IgnoreError();
  return committed;
}

}  // namespace segserve::scheduler
