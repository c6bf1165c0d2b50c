// File: server/scheduler/job_store.h — the durable-store seam of the scheduler. Two
// implementations with the same semantics: SqliteJobStore (the embedded default,
// <data_dir>/jobs.db) and PostgresJobStore (--database); the scheduler does not know which
// one it has, and tests/scheduler runs every JobStore-level suite against both. Tests may
// decorate a store to simulate failures. Every mutating call returns only after the change
// is durable.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/scheduler/job.h"

namespace segserve::scheduler {

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Inserts all jobs in one transaction (a sweep's parent and children land together).
  // AlreadyExists when an id is taken.
  virtual absl::Status Insert(const std::vector<Job>& jobs) = 0;
  // Writes every mutable field of `job` (state, reason, times, result, progress,
  // restarts, last_completed_epoch, cancel_requested). NotFound for an unknown id.
  virtual absl::Status Update(const Job& job) = 0;
  // Cheaper update for frequent progress reports.
  virtual absl::Status UpdateProgress(const JobId& id, const JobProgress& progress) = 0;
  virtual absl::Status UpdateLastCompletedEpoch(const JobId& id, int epoch) = 0;

  // NotFound for an unknown id. child_ids are filled for parent kinds (sweeps, experiments).
  virtual absl::StatusOr<Job> Get(const JobId& id) = 0;
  // Newest first.
  virtual absl::StatusOr<std::vector<Job>> List(const JobFilter& filter) = 0;
  // The QUEUED non-parent job to run next: highest priority, then oldest; nullopt if none.
  virtual absl::StatusOr<std::optional<Job>> NextRunnable() = 0;
  // Children of a sweep or experiment in submission order.
  virtual absl::StatusOr<std::vector<Job>> Children(const JobId& parent_id) = 0;
  // Number of jobs per state, and the number of QUEUED non-parent jobs (the queue depth).
  virtual absl::StatusOr<std::map<JobState, int64_t>> CountByState() = 0;
  virtual absl::StatusOr<int64_t> CountRunnableQueued() = 0;
  // Removes the jobs' records in one transaction (unknown ids are ignored). The caller
  // decides what may go (Scheduler::Purge never passes a queued or running job).
  virtual absl::Status Delete(const std::vector<JobId>& ids) = 0;
};

}  // namespace segserve::scheduler
