// File: server/scheduler/scheduler.h — the durable job scheduler: a priority queue of
// jobs in a JobStore, `training_slots` worker threads that hand jobs to the Runner
// registered for their kind, cancellation, sweeps (a parent with one child per
// configuration), watch streams, recovery after a crash and a graceful shutdown.
//
// Durability: every submission and state change is written to the store before the
// call that caused it returns. Recovery (in Create): jobs found RUNNING were interrupted
// by a crash; they are re-queued with restarts+1 and keep last_completed_epoch, so their
// runner resumes after it (a RUNNING job whose cancel was requested becomes CANCELLED).
// Shutdown: running jobs see ctx.cancelled(); when their runner returns they are
// explicitly re-queued (QUEUED, restarts+1), so the next start resumes them the same way.
//
// All slots are shared by every non-parent kind (TRAIN, ANALYSIS, SYNTH); parents (SWEEP,
// EXPERIMENT) occupy no slot — they finish when their last child does. An EXPERIMENT parent
// is a sweep whose result, once every child is terminal, is also built by
// SchedulerOptions::experiment_report (the aggregation over seeds, server/experiment/).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>  // std::once_flag
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/clock.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/job.h"
#include "server/scheduler/job_store.h"
#include "server/scheduler/runner.h"
#include "server/scheduler/scheduler_metrics.h"
#include "server/scheduler/watch.h"

namespace segserve::scheduler {

struct SchedulerOptions {
  // Jobs that run at once (worker threads). >= 1; 0 is allowed with shared_store (a
  // replica that only serves: it submits, lists and cancels, others run the jobs).
  int training_slots = 1;
  // Any number of schedulers (segserve replicas) share the store (PostgreSQL). Workers
  // claim jobs (JobStore::Claim), renew their leases every lease/3 (the heartbeat, which
  // also delivers cancel requests made on any replica), and a maintenance pass on every
  // replica, at the same interval, re-queues jobs whose lease expired (their worker died or
  // was paused) and completes parents whose last child ended elsewhere; every
  // poll_interval it streams the changes of jobs running elsewhere to this replica's
  // watchers (so a watcher there lags by up to poll_interval). Recovery at start
  // re-queues only expired leases and jobs of this host's workers that are gone (a restarted
  // replica resumes its jobs at once), not every RUNNING job. Idle workers poll for work every
  // poll_interval. False (single box): the scheduler owns the store alone.
  bool shared_store = false;
  // Names this replica's workers in the store (Job::owner). Empty: "<host>-<pid>-<random>".
  std::string worker_id;
  // A running job whose worker stops renewing is re-queued after at most about
  // lease + lease/3 (one maintenance pass late).
  std::chrono::milliseconds lease{30000};
  std::chrono::milliseconds poll_interval{1000};
  // Test seam: while it returns true, maintenance passes (heartbeats included) are skipped,
  // as if this replica were paused (SIGSTOP) while its runners go on.
  std::function<bool()> maintenance_paused_for_testing;
  // QUEUED jobs (sweep parents excluded) beyond which submissions get
  // RESOURCE_EXHAUSTED. >= 1.
  int max_queued_jobs = 64;
  // Events buffered per watcher before intermediate progress events are dropped.
  size_t watch_buffer = 32;
  // Progress is persisted at most this often (always at epoch ends and state changes);
  // watchers see every report.
  std::chrono::milliseconds progress_persist_interval{5000};
  // A child's progress reaches its sweep/experiment parent's watchers at most this often:
  // the parent's fraction counts finished children as 1 and running ones by their own
  // fraction (not persisted: the stored parent progress counts finished children only).
  std::chrono::milliseconds parent_progress_interval{1000};
  // Called on the worker thread after a job reached a terminal state and was persisted,
  // before watchers get its terminal event (not for sweep parents), e.g. to apply
  // run-directory retention. Must not block long; may call Get/List, not Cancel/Submit.
  std::function<void(const Job&)> on_finished;
  // Builds the report of an EXPERIMENT parent from its children (all terminal), once, when
  // the last child ends and the experiment was not cancelled; the returned JSON is stored
  // as result_json["report"]. An error fails the experiment with that reason. Called with
  // the scheduler's lock held, on the thread that finished the last child (a worker, or the
  // gRPC thread of a CancelJob on a queued child): it must not call the scheduler and
  // should only aggregate and write one small file. Null: experiments finish like sweeps.
  std::function<absl::StatusOr<std::string>(const Job& parent, const std::vector<Job>& children)>
      experiment_report;
};

// "<host>-<pid>-<4 hex digits>": the default SchedulerOptions::worker_id.
std::string DefaultWorkerId();
// True when `owner` is such an id of this host whose process is gone (no such pid), or
// names this process's pid with another suffix (an earlier incarnation, e.g. pid 1 in a
// restarted container). Used at start to re-queue those jobs without waiting for the lease.
bool IsGoneLocalWorker(const std::string& owner);

class Scheduler {
 public:
  // Recovers interrupted jobs (see above), then starts the workers. `clock` (not owned,
  // null = real clock) stamps job times and throttles progress writes; `metrics` (not
  // owned) may be null. Errors: InvalidArgument for bad options, the store's errors.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(std::unique_ptr<JobStore> store,
                                                           RunnerMap runners,
                                                           SchedulerOptions options,
                                                           common::Clock* clock,
                                                           metrics::Metrics* metrics);

  // Opens the SQLite job store at `path` and creates the scheduler on it. A file that
  // fails its integrity check (the store's DataLoss) is neither used nor modified: the
  // scheduler starts *unavailable* instead, so the rest of the server keeps serving —
  // every call below answers FailedPrecondition naming the problem, the file and the
  // recovery steps (docs/RELIABILITY.md), and segserve_job_store_healthy is 0. Other
  // errors (unreadable file, newer schema) are returned.
  static absl::StatusOr<std::unique_ptr<Scheduler>> OpenSqlite(const std::string& path,
                                                               RunnerMap runners,
                                                               SchedulerOptions options,
                                                               common::Clock* clock,
                                                               metrics::Metrics* metrics);

  // OK, or why the job services are unavailable (see OpenSqlite).
  const absl::Status& availability() const { return unavailable_; }
  // Shutdown(), then releases the store.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Persists a QUEUED job and returns it. Errors: InvalidArgument (kind SWEEP: use
  // SubmitSweep), FailedPrecondition (no runner for the kind, or shutting down),
  // ResourceExhausted (queue full; the message names max_queued_jobs and its value).
  absl::StatusOr<Job> Submit(JobKind kind, std::string spec_json, int priority = 0);

  // One SWEEP parent (spec `parent_spec_json`) and one `child_kind` child per entry of
  // `child_spec_jsons`, persisted together in one transaction; returns the parent (with
  // child_ids). The children queue like any job (the parent's priority); the parent's
  // result_json is SweepResultJson of its children (see sweep.h). Errors as Submit, plus
  // InvalidArgument for no children; ResourceExhausted when the children do not fit.
  absl::StatusOr<Job> SubmitSweep(std::string parent_spec_json,
                                  std::vector<std::string> child_spec_jsons, int priority = 0,
                                  JobKind child_kind = JobKind::kTrain);
  // As SubmitSweep, with the parent of kind `parent_kind` (SWEEP or EXPERIMENT; other kinds
  // are InvalidArgument).
  absl::StatusOr<Job> SubmitParent(JobKind parent_kind, std::string parent_spec_json,
                                   std::vector<std::string> child_spec_jsons, int priority = 0,
                                   JobKind child_kind = JobKind::kTrain);

  // The job with its latest progress (running jobs: as last reported, even if not yet
  // persisted). NotFound for unknown ids.
  absl::StatusOr<Job> Get(const JobId& id);
  // Newest first.
  absl::StatusOr<std::vector<Job>> List(const JobFilter& filter);

  // Queued job: CANCELLED at once, never starts. Running job: cancel_requested is
  // persisted, the runner sees ctx.cancelled() and the job ends CANCELLED (or SUCCEEDED
  // if it completed before it looked). Finished job: no-op. Sweep: cancels every child;
  // the parent ends CANCELLED when the last child stops (the same for an experiment). Returns the
  // job as of now. NotFound for unknown ids.
  absl::StatusOr<Job> Cancel(const JobId& id);

  // A stream of events for `id`: first the current snapshot, then every progress report
  // and state change, ending with the terminal event (a finished job yields only that).
  // Streams also end, without a terminal event, at Shutdown. Closing or dropping the
  // Subscription never affects the job. NotFound for unknown ids.
  absl::StatusOr<std::unique_ptr<Subscription>> Watch(const JobId& id);

  // Removes the records of finished jobs that finished at or before `finished_before`: top-level
  // jobs only, a sweep together with its children (a sweep is finished only when every
  // child is). QUEUED and RUNNING jobs are never touched. Returns the removed jobs (children
  // included) so the caller can remove their files.
  absl::StatusOr<std::vector<Job>> Purge(TimePoint finished_before);

  // QUEUED and RUNNING jobs (sweep parents included), e.g. to tell whether a data set is
  // in use. At most 1000 of each state.
  absl::StatusOr<std::vector<Job>> ActiveJobs();

  // Stops taking jobs, interrupts running ones (ctx.cancelled()), waits for their runners
  // to return and re-queues them; ends watch streams. Idempotent; later submissions get
  // FailedPrecondition.
  void Shutdown();

  const SchedulerOptions& options() const { return options_; }

 private:
  struct RunningJob;
  class Context;
  struct Outbox {
    std::vector<std::pair<JobEvent, uint64_t>> events;
  };

  Scheduler(std::unique_ptr<JobStore> store, RunnerMap runners, SchedulerOptions options,
            common::Clock* clock, metrics::Metrics* metrics);
  absl::Status Recover();
  // A RUNNING job found at start whose run is gone: CANCELLED when a cancel was requested,
  // else QUEUED with restarts+1 and a reason ("re-queued after a server restart<detail>").
  void MarkInterruptedAtStart(Job& job, const std::string& detail) const;
  void WorkerLoop();
  // shared_store, until Shutdown: every lease/3 heartbeats, re-queueing expired leases and
  // parents (`leases`); every poll_interval the queue depth and watchers of jobs elsewhere.
  void MaintenanceLoop();
  void MaintainOnce(bool leases);
  // Synchronous lease check for JobContext::CheckLease.
  absl::Status CheckLease(RunningJob& run);
  // Runs a write of `run` (under mu_); Aborted marks the run lost. On a shared store an
  // Unavailable write is retried for up to one lease (a database restart or failover must
  // not fail the job), after which the run stops as lost. Call without mu_.
  absl::Status RunWrite(RunningJob& run, const std::function<absl::Status()>& write)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records that `run` lost its lease: it is stopped and its later writes are dropped.
  void MarkLostLocked(RunningJob& run, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Claims the next runnable job (RUNNING); null when none or on a store error
  // (`store_error` set).
  std::shared_ptr<RunningJob> StartNextLocked(Outbox& out, bool& store_error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(const std::shared_ptr<RunningJob>& run, const absl::Status& status,
              std::string result_json);
  void EraseRunLocked(const std::shared_ptr<RunningJob>& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnProgress(RunningJob& run, const JobProgress& progress);
  void OnNote(RunningJob& run, const std::string& message);
  absl::Status OnEpochCompleted(RunningJob& run, int epoch);

  absl::StatusOr<Job> LoadLocked(const JobId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CancelOneLocked(Job job, Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status UpdateParentLocked(const JobId& parent_id, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the parent's watchers its live progress (see parent_progress_interval).
  void EmitParentProgressLocked(const JobId& parent_id, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A running sweep's or experiment's progress from its children: finished ones count 1,
  // running ones their own fraction (live when they run here, else as last stored); step and
  // steps are children finished and all; an ETA from the parent's elapsed time. `summary`
  // (optional) gets "k/n configurations done; running <child> epoch e/E, ...". False when
  // the children cannot be read or there are none.
  bool ParentProgressLocked(const Job& parent, JobProgress* progress, std::string* summary)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `job` with a running parent's progress computed by ParentProgressLocked (the stored row
  // holds none: it is only derived from the children).
  void WithParentProgressLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRoomLocked(int64_t jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobId NewIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(const Job& job, bool terminal, std::string message, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Flush(Outbox& out);
  TimePoint WallNow() const { return clock_->WallNow(); }

  const std::unique_ptr<JobStore> store_;  // Null when unavailable.
  absl::Status unavailable_;               // Set only before any call is served.
  const RunnerMap runners_;
  const SchedulerOptions options_;
  common::Clock* const clock_;
  SchedulerMetrics metrics_;
  const std::shared_ptr<WatchHub> hub_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // QUEUED non-sweep jobs in the store.
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::map<JobId, std::shared_ptr<RunningJob>> running_ ABSL_GUARDED_BY(mu_);
  // shared_store: the last state seen of watched jobs that run elsewhere (MaintainOnce).
  std::map<JobId, std::string> remote_seen_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_;             // Set in Create.
  std::vector<std::thread> workers_;  // Written only in Create and Shutdown.
  std::thread maintenance_;
  absl::CondVar maintenance_cv_;  // Wakes MaintenanceLoop at Shutdown.
  std::once_flag shutdown_once_;
};

}  // namespace segserve::scheduler
