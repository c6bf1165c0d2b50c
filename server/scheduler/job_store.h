// File: server/scheduler/job_store.h — the durable-store seam of the scheduler. Two
// implementations with the same semantics: SqliteJobStore (the embedded default,
// <data_dir>/jobs.db) and PostgresJobStore (--database); the scheduler does not know which
// one it has, and tests/scheduler runs every JobStore-level suite against both. Tests may
// decorate a store to simulate failures. Every mutating call returns only after the change
// is durable.
//
// Leases: any number of schedulers (segserve replicas with the train role) may share one
// store (PostgreSQL). A worker takes a job with Claim, which is atomic across processes
// (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL), bumps the job's attempt and gives it a
// lease; RenewLease extends it (the heartbeat); RequeueExpired, run by any replica, puts a
// job whose worker stopped renewing back in the queue. Every write a worker makes for a
// running job carries its attempt (a Fence): once the job was re-queued or re-claimed,
// the old worker's writes fail with Aborted and change nothing.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/scheduler/job.h"

namespace segserve::scheduler {

// A conditional write. Empty: unconditional.
struct Fence {
  // > 0: the row must be RUNNING with this attempt (a worker's write for its run).
  int attempt = 0;
  // Set: the row's state must be this one (e.g. a parent's update computed from a read).
  std::optional<JobState> state;
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Inserts all jobs in one transaction (a sweep's parent and children land together).
  // AlreadyExists when an id is taken.
  virtual absl::Status Insert(const std::vector<Job>& jobs) = 0;
  // Writes every mutable field of `job` (state, reason, times, result, progress,
  // restarts, last_completed_epoch, owner) when the row passes `fence`; cancel_requested
  // is only ever set, never cleared (a request made elsewhere survives a stale snapshot).
  // NotFound for an unknown id; Aborted when the fence fails (nothing is written).
  virtual absl::Status Update(const Job& job, const Fence& fence) = 0;
  absl::Status Update(const Job& job) { return Update(job, Fence{}); }
  // Cheaper updates for frequent progress reports. `attempt` > 0 fences as Fence::attempt.
  virtual absl::Status UpdateProgress(const JobId& id, const JobProgress& progress,
                                      int attempt) = 0;
  virtual absl::Status UpdateLastCompletedEpoch(const JobId& id, int epoch, int attempt) = 0;
  absl::Status UpdateProgress(const JobId& id, const JobProgress& progress) {
    return UpdateProgress(id, progress, 0);
  }
  absl::Status UpdateLastCompletedEpoch(const JobId& id, int epoch) {
    return UpdateLastCompletedEpoch(id, epoch, 0);
  }
  // Sets cancel_requested and nothing else (a running job's worker, wherever it runs, sees
  // it at its next RenewLease). NotFound for an unknown id.
  virtual absl::Status RequestCancel(const JobId& id) = 0;

  // Takes the job NextRunnable would return for `owner`, atomically across processes: the
  // job becomes RUNNING with attempt+1, owner set, a lease until `lease` from now (the
  // database's clock on PostgreSQL), `started` = `now` if unset and reason cleared.
  // Returns the job as written; nullopt when nothing is runnable.
  virtual absl::StatusOr<std::optional<Job>> Claim(const std::string& owner,
                                                   std::chrono::milliseconds lease,
                                                   TimePoint now) = 0;
  // Extends the lease of `id`'s run `attempt` to `lease` from now; returns whether a cancel
  // was requested. Aborted when the run lost its lease (re-queued, re-claimed or finished).
  virtual absl::StatusOr<bool> RenewLease(const JobId& id, int attempt,
                                          std::chrono::milliseconds lease) = 0;
  // RUNNING non-parent jobs whose lease has expired: QUEUED with restarts+1 and a reason
  // naming the lost worker, or CANCELLED (finished = `now`) when a cancel was requested;
  // owner cleared, attempt kept (the next Claim bumps it). Returns them as written.
  virtual absl::StatusOr<std::vector<Job>> RequeueExpired(TimePoint now) = 0;

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
