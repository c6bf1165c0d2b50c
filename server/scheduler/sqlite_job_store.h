// File: server/scheduler/sqlite_job_store.h — the job store on SQLite (`<data_dir>/jobs.db`):
// WAL journal, synchronous=FULL (a job or state change is on disk before the call
// returns, so an acknowledged submission survives kill -9 and power loss), busy timeout,
// schema version in PRAGMA user_version, prepared statements reused under one mutex.
// One process owns the file, so Claim needs no more than a transaction; leases are kept in
// the system clock's milliseconds.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/scheduler/job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace segserve::scheduler {

class SqliteJobStore : public JobStore {
 public:
  static constexpr int kSchemaVersion = 2;  // 2: attempt, owner, lease_expires_ms

  // Opens (creating if absent) the database at `path`; its directory must exist.
  // Errors:
  //  - DataLoss when the file is not a database or fails PRAGMA quick_check. Nothing is
  //    modified; the caller decides (Scheduler::OpenSqlite keeps the file and leaves the
  //    job services unavailable: silently starting with an empty history would lose jobs;
  //    scripts/recover-jobs-db.sh rebuilds the file from its readable rows).
  //  - FailedPrecondition when the schema version is newer than this build knows.
  //  - Internal / Unavailable for other SQLite errors (e.g. locked, unreadable).
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path);
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  absl::Status Insert(const std::vector<Job>& jobs) override;
  using JobStore::Update;
  using JobStore::UpdateLastCompletedEpoch;
  using JobStore::UpdateProgress;
  absl::Status Update(const Job& job, const Fence& fence) override;
  absl::Status UpdateProgress(const JobId& id, const JobProgress& progress, int attempt) override;
  absl::Status UpdateLastCompletedEpoch(const JobId& id, int epoch, int attempt) override;
  absl::Status RequestCancel(const JobId& id) override;
  absl::StatusOr<std::optional<Job>> Claim(const std::string& owner,
                                           std::chrono::milliseconds lease,
                                           TimePoint now) override;
  absl::StatusOr<bool> RenewLease(const JobId& id, int attempt,
                                  std::chrono::milliseconds lease) override;
  absl::StatusOr<std::vector<Job>> RequeueExpired(TimePoint now) override;
  absl::StatusOr<Job> Get(const JobId& id) override;
  absl::StatusOr<std::vector<Job>> List(const JobFilter& filter) override;
  absl::StatusOr<std::optional<Job>> NextRunnable() override;
  absl::StatusOr<std::vector<Job>> Children(const JobId& parent_id) override;
  absl::StatusOr<std::map<JobState, int64_t>> CountByState() override;
  absl::StatusOr<int64_t> CountRunnableQueued() override;
  absl::Status Delete(const std::vector<JobId>& ids) override;

  const std::string& path() const { return path_; }

 private:
  SqliteJobStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  absl::Status Init();
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<sqlite3_stmt*> Prepared(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<Job>> QueryJobs(sqlite3_stmt* stmt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FillChildIds(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertOne(const Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After an UPDATE that changed no row: NotFound for an unknown id, else Aborted (the
  // fence failed).
  absl::Status NoRowUpdated(const JobId& id, const Fence& fence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<Job>> NextRunnableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::scheduler
