// File: server/scheduler/postgres_job_store.h — the job store on PostgreSQL
// (--database=postgresql://...): the same semantics as SqliteJobStore behind the same
// JobStore interface, so the scheduler does not know which one it talks to. One libpq
// connection (server/postgres/connection.h: prepared statements, a timeout on every query,
// reconnect with Unavailable meanwhile) guarded by a mutex; the scheduler makes one
// job-store call at a time (under its own lock), so a pool would only sit idle.
//
// Durability: every mutating call returns after COMMIT (synchronous_commit as the server
// is configured: on by default, so an acknowledged submission survives kill -9 of segserve
// and a crash of the database server).
//
// Leases: Claim is one UPDATE of the row picked by SELECT ... FOR UPDATE SKIP LOCKED, so any
// number of replicas claim concurrently without blocking each other or taking one job twice;
// lease times are the database's clock (clock_timestamp()), so replicas' clocks do not matter.
//
// Schema: migrations/postgres/NNNN_*.sql, embedded at build time and applied by Open under
// an advisory lock (server/postgres/migrations.h), recorded as component "jobs" in
// schema_version.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/postgres/connection.h"
#include "server/postgres/migrations.h"
#include "server/scheduler/job_store.h"

namespace segserve::scheduler {

class PostgresJobStore : public JobStore {
 public:
  static constexpr const char* kComponent = "jobs";

  // Connects and migrates the schema. Errors: InvalidArgument (bad connection string, a
  // password in it), Unavailable (unreachable, with the reason; never the password),
  // FailedPrecondition (the database's schema is newer than this binary: both versions
  // are named).
  static absl::StatusOr<std::unique_ptr<PostgresJobStore>> Open(postgres::ConnectOptions options);
  // The embedded migrations, in version order (generated from migrations/postgres/).
  static const std::vector<postgres::Migration>& Migrations();

  PostgresJobStore(const PostgresJobStore&) = delete;
  PostgresJobStore& operator=(const PostgresJobStore&) = delete;

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

  const std::string& description() const { return description_; }

 private:
  explicit PostgresJobStore(std::unique_ptr<postgres::Connection> connection)
      : description_(connection->description()), connection_(std::move(connection)) {}
  absl::StatusOr<std::vector<Job>> QueryJobs(const postgres::Statement& statement,
                                             const postgres::Params& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FillChildIds(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs an UPDATE of one job; no row changed: NotFound for an unknown id, else Aborted
  // (`fence` failed).
  absl::Status UpdateOne(const postgres::Statement& statement, const postgres::Params& params,
                         const JobId& id, const Fence& fence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NoRowUpdated(const JobId& id, const Fence& fence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string description_;
  absl::Mutex mu_;
  std::unique_ptr<postgres::Connection> connection_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve::scheduler
