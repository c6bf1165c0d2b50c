#include "server/scheduler/scheduler.h"

#include <cstdio>
#include <exception>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/scheduler/scheduler_internal.h"
#include "server/scheduler/sqlite_job_store.h"
#include "server/scheduler/sweep.h"

namespace segserve::scheduler {

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(std::unique_ptr<JobStore> store,
                                                             RunnerMap runners,
                                                             SchedulerOptions options,
                                                             common::Clock* clock,
                                                             metrics::Metrics* metrics) {
  if (store == nullptr) return absl::InvalidArgumentError("scheduler needs a job store");
  if (options.training_slots < (options.shared_store ? 0 : 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("training_slots must be >= ", options.shared_store ? 0 : 1, ", got ",
                     options.training_slots));
  }
  if (options.shared_store && (options.lease < std::chrono::milliseconds(30) ||
                               options.poll_interval < std::chrono::milliseconds(1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease must be >= 30 ms and poll_interval >= 1 ms, got ",
                     options.lease.count(), " ms and ", options.poll_interval.count(), " ms"));
  }
  if (options.max_queued_jobs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queued_jobs must be >= 1, got ", options.max_queued_jobs));
  }
  for (const auto& [kind, runner] : runners) {
    if (IsParentKind(kind) || runner == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid runner registration for kind ", JobKindName(kind)));
    }
  }
  std::unique_ptr<Scheduler> scheduler(new Scheduler(std::move(store), std::move(runners), options,
                                                     clock ? clock : common::Clock::Real(),
                                                     metrics));
  scheduler->worker_id_ = options.worker_id.empty() ? DefaultWorkerId() : options.worker_id;
  RETURN_IF_ERROR(scheduler->Recover());
  scheduler->metrics_.SetStoreHealthy(true);
  for (int i = 0; i < options.training_slots; ++i) {
    scheduler->workers_.emplace_back([s = scheduler.get()] { s->WorkerLoop(); });
  }
  if (options.shared_store) {
    scheduler->maintenance_ = std::thread([s = scheduler.get()] { s->MaintenanceLoop(); });
    LOG(INFO) << "scheduler: shared job store; worker " << scheduler->worker_id_ << ", "
              << options.training_slots << " slot(s), lease " << options.lease.count() << " ms";
  }
  return scheduler;
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::OpenSqlite(const std::string& path,
                                                                 RunnerMap runners,
                                                                 SchedulerOptions options,
                                                                 common::Clock* clock,
                                                                 metrics::Metrics* metrics) {
  absl::StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(path);
  if (store.ok()) {
    return Create(std::move(*store), std::move(runners), options, clock, metrics);
  }
  if (store.status().code() != absl::StatusCode::kDataLoss) return store.status();
  // Starting with an empty history would lose every accepted job, refusing to start would
  // take segmentation down with it: keep the file for the operator and serve the rest.
  LOG(ERROR) << "job store failed its integrity check; job services are unavailable, "
                "everything else serves: "
             << store.status().message();
  constexpr size_t kMaxDetail = 400;  // quick_check may list a hundred problems
  std::string detail(store.status().message());
  if (detail.size() > kMaxDetail) detail = detail.substr(0, kMaxDetail) + " ...";
  std::unique_ptr<Scheduler> scheduler(new Scheduler(
      nullptr, std::move(runners), options, clock ? clock : common::Clock::Real(), metrics));
  scheduler->unavailable_ = absl::FailedPreconditionError(
      absl::StrCat("job services are unavailable: jobs.db failed its integrity check: ", detail,
                   ". Nothing was deleted: the file is kept at ", path,
                   "; see docs/RELIABILITY.md (Faults, corrupted jobs.db) to recover its jobs"));
  scheduler->metrics_.SetStoreHealthy(false);
  return scheduler;
}

Scheduler::Scheduler(std::unique_ptr<JobStore> store, RunnerMap runners, SchedulerOptions options,
                     common::Clock* clock, metrics::Metrics* metrics)
    : store_(std::move(store)),
      runners_(std::move(runners)),
      options_(options),
      clock_(clock),
      metrics_(metrics),
      hub_(std::make_shared<WatchHub>(options.watch_buffer)),
      rng_(std::random_device{}()) {}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::MarkInterruptedAtStart(Job& job, const std::string& detail) const {
  job.owner.clear();
  if (job.cancel_requested) {
    job.state = JobState::kCancelled;
    job.reason = "cancelled by request (stopped by a server restart)";
    job.finished = WallNow();
  } else {
    job.state = JobState::kQueued;
    job.restarts += 1;
    job.reason = absl::StrCat("re-queued after a server restart", detail,
                              "; resumes after epoch ", job.last_completed_epoch);
  }
}

absl::Status Scheduler::Recover() {
  absl::MutexLock lock(&mu_);
  // Shared store: other replicas' RUNNING jobs are alive as long as their leases are; only
  // expired ones are re-queued (here and by every maintenance pass).
  if (options_.shared_store) {
    // A worker of this host that is gone (an earlier run of this replica: same pid in a
    // restarted container, or a pid that no longer exists) cannot renew its lease: its jobs
    // are re-queued now instead of after the lease, so a restarted single replica resumes
    // at once. Live processes on this host are left alone.
    JobFilter running_filter;
    running_filter.states = {JobState::kRunning};
    running_filter.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Job> running, store_->List(running_filter));
    for (Job& job : running) {
      if (IsParentKind(job.kind) || job.owner == worker_id_ || !IsGoneLocalWorker(job.owner)) {
        continue;
      }
      const int attempt = job.attempt;
      MarkInterruptedAtStart(job, absl::StrCat(" (worker ", job.owner, " is gone)"));
      absl::Status requeued = store_->Update(job, Fence{attempt, std::nullopt});
      if (requeued.code() == absl::StatusCode::kAborted) continue;  // someone was quicker
      RETURN_IF_ERROR(requeued);
      LOG(WARNING) << "job " << job.id << ": " << job.reason;
    }
    ASSIGN_OR_RETURN(std::vector<Job> expired, store_->RequeueExpired(WallNow()));
    metrics_.LeasesExpired(static_cast<int64_t>(expired.size()));
    for (const Job& job : expired) {
      LOG(WARNING) << "job " << job.id << ": " << job.reason << " (now "
                   << JobStateName(job.state) << ")";
    }
  }
  // Each pass moves the jobs it sees out of RUNNING, so the loop ends.
  while (!options_.shared_store) {
    JobFilter filter;
    filter.states = {JobState::kRunning};
    filter.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->List(filter));
    std::vector<Job> interrupted;
    for (Job& job : jobs) {
      if (!IsParentKind(job.kind)) interrupted.push_back(std::move(job));
    }
    if (interrupted.empty()) break;
    for (Job& job : interrupted) {
      MarkInterruptedAtStart(job, "");
      RETURN_IF_ERROR(store_->Update(job));
      LOG(WARNING) << "job " << job.id << " was RUNNING at start: now " << JobStateName(job.state)
                   << " (restarts " << job.restarts << ")";
    }
  }
  // A crash between a child's last update and its parent's leaves the parent open.
  Outbox ignored;  // Nobody watches yet.
  ASSIGN_OR_RETURN(queued_, store_->CountRunnableQueued());
  for (JobKind parent_kind : {JobKind::kSweep, JobKind::kExperiment}) {
    JobFilter parents;
    parents.kind = parent_kind;
    parents.states = {JobState::kQueued, JobState::kRunning};
    parents.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Job> open_parents, store_->List(parents));
    for (const Job& parent : open_parents) {
      RETURN_IF_ERROR(UpdateParentLocked(parent.id, ignored));
    }
  }
  ASSIGN_OR_RETURN(auto counts, store_->CountByState());
  metrics_.SetStateCounts(counts);
  metrics_.SetQueueDepth(queued_);
  return absl::OkStatus();
}

JobId Scheduler::NewIdLocked() {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "job-%016llx", static_cast<unsigned long long>(rng_()));
  return buf;
}

absl::Status Scheduler::CheckRoomLocked(int64_t jobs) {
  if (stopping_) return absl::FailedPreconditionError("the scheduler is shutting down");
  if (options_.shared_store) {
    // Other replicas submit and claim too: count what is in the store now.
    ASSIGN_OR_RETURN(queued_, store_->CountRunnableQueued());
  }
  if (queued_ + jobs > options_.max_queued_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "job queue is full: ", queued_, " jobs queued, ", jobs, " more would exceed the limit ",
        "max_queued_jobs=", options_.max_queued_jobs, "; retry when jobs finish"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Job> Scheduler::Submit(JobKind kind, std::string spec_json, int priority) {
  RETURN_IF_ERROR(unavailable_);
  if (IsParentKind(kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(JobKindName(kind), " jobs are submitted with SubmitParent"));
  }
  if (runners_.count(kind) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("this server runs no ", JobKindName(kind), " jobs"));
  }
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckRoomLocked(1));
  Job job;
  job.id = NewIdLocked();
  job.kind = kind;
  job.priority = priority;
  job.created = WallNow();
  job.spec_json = std::move(spec_json);
  RETURN_IF_ERROR(store_->Insert({job}));
  ++queued_;
  metrics_.Transition(std::nullopt, JobState::kQueued);
  metrics_.SetQueueDepth(queued_);
  cv_.Signal();
  return job;
}

absl::StatusOr<Job> Scheduler::SubmitSweep(std::string parent_spec_json,
                                           std::vector<std::string> child_spec_jsons, int priority,
                                           JobKind child_kind) {
  return SubmitParent(JobKind::kSweep, std::move(parent_spec_json), std::move(child_spec_jsons),
                      priority, child_kind);
}

absl::StatusOr<Job> Scheduler::SubmitParent(JobKind parent_kind, std::string parent_spec_json,
                                            std::vector<std::string> child_spec_jsons, int priority,
                                            JobKind child_kind) {
  RETURN_IF_ERROR(unavailable_);
  if (!IsParentKind(parent_kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(JobKindName(parent_kind), " jobs have no children"));
  }
  if (child_spec_jsons.empty()) {
    return absl::InvalidArgumentError("a sweep needs at least one configuration");
  }
  if (IsParentKind(child_kind)) {
    return absl::InvalidArgumentError("a parent's children cannot be parents");
  }
  if (runners_.count(child_kind) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("this server runs no ", JobKindName(child_kind), " jobs"));
  }
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckRoomLocked(static_cast<int64_t>(child_spec_jsons.size())));
  std::vector<Job> jobs(1 + child_spec_jsons.size());
  Job& parent = jobs[0];
  parent.id = NewIdLocked();
  parent.kind = parent_kind;
  parent.priority = priority;
  parent.created = WallNow();
  parent.spec_json = std::move(parent_spec_json);
  for (size_t i = 0; i < child_spec_jsons.size(); ++i) {
    Job& child = jobs[i + 1];
    child.id = NewIdLocked();
    child.kind = child_kind;
    child.priority = priority;
    child.parent_id = parent.id;
    child.created = parent.created;
    child.spec_json = std::move(child_spec_jsons[i]);
    parent.child_ids.push_back(child.id);
  }
  RETURN_IF_ERROR(store_->Insert(jobs));
  queued_ += static_cast<int64_t>(child_spec_jsons.size());
  for (size_t i = 0; i < jobs.size(); ++i) metrics_.Transition(std::nullopt, JobState::kQueued);
  metrics_.SetQueueDepth(queued_);
  cv_.SignalAll();
  return parent;
}

absl::StatusOr<Job> Scheduler::LoadLocked(const JobId& id) {
  auto it = running_.find(id);
  if (it != running_.end()) return it->second->job;
  return store_->Get(id);
}

absl::StatusOr<Job> Scheduler::Get(const JobId& id) {
  RETURN_IF_ERROR(unavailable_);
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job job, LoadLocked(id));
  WithParentProgressLocked(job);
  return job;
}

absl::StatusOr<std::vector<Job>> Scheduler::List(const JobFilter& filter) {
  RETURN_IF_ERROR(unavailable_);
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->List(filter));
  for (Job& job : jobs) {
    auto it = running_.find(job.id);
    if (it != running_.end()) job = it->second->job;
    WithParentProgressLocked(job);
  }
  return jobs;
}

absl::StatusOr<Job> Scheduler::Cancel(const JobId& id) {
  RETURN_IF_ERROR(unavailable_);
  Outbox out;
  absl::StatusOr<Job> result;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(Job job, LoadLocked(id));
    if (IsTerminal(job.state)) return job;
    if (IsParentKind(job.kind)) {
      RETURN_IF_ERROR(store_->RequestCancel(id));
      ASSIGN_OR_RETURN(std::vector<Job> children, store_->Children(id));
      for (Job& child : children) {
        auto it = running_.find(child.id);
        RETURN_IF_ERROR(CancelOneLocked(it != running_.end() ? it->second->job : child, out));
      }
    } else {
      RETURN_IF_ERROR(CancelOneLocked(std::move(job), out));
    }
    result = LoadLocked(id);
  }
  Flush(out);
  return result;
}

absl::Status Scheduler::CancelOneLocked(Job job, Outbox& out) {
  if (job.state == JobState::kQueued) {
    job.state = JobState::kCancelled;
    job.reason = "cancelled by request";
    job.cancel_requested = true;
    job.finished = WallNow();
    // Fenced on QUEUED: a worker (here or on another replica) may have claimed it since
    // it was read; then it is cancelled as a running job below.
    absl::Status cancelled = store_->Update(job, Fence{0, JobState::kQueued});
    if (cancelled.ok()) {
      --queued_;
      metrics_.Transition(JobState::kQueued, JobState::kCancelled);
      metrics_.SetQueueDepth(queued_);
      EmitLocked(job, /*terminal=*/true, "cancelled before it started", out);
      if (!job.parent_id.empty()) return UpdateParentLocked(job.parent_id, out);
      return absl::OkStatus();
    }
    if (cancelled.code() != absl::StatusCode::kAborted) return cancelled;
    ASSIGN_OR_RETURN(job, LoadLocked(job.id));
  }
  if (job.state != JobState::kRunning) return absl::OkStatus();
  auto it = running_.find(job.id);
  if (it == running_.end()) {
    // Running on another replica: its worker sees the request at its next heartbeat.
    if (job.cancel_requested) return absl::OkStatus();
    RETURN_IF_ERROR(store_->RequestCancel(job.id));
    job.cancel_requested = true;
    EmitLocked(job, /*terminal=*/false, "cancel requested", out);
    return absl::OkStatus();
  }
  RunningJob& run = *it->second;
  if (run.cancel) return absl::OkStatus();
  run.job.cancel_requested = true;
  // Persisted so that a crash before the runner stops cannot resurrect the job.
  RETURN_IF_ERROR(store_->RequestCancel(run.job.id));
  run.cancel = true;
  EmitLocked(run.job, /*terminal=*/false, "cancel requested", out);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Subscription>> Scheduler::Watch(const JobId& id) {
  RETURN_IF_ERROR(unavailable_);
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Job job, LoadLocked(id));
  JobEvent initial;
  initial.terminal = IsTerminal(job.state);
  initial.message =
      absl::StrCat(JobStateName(job.state), job.reason.empty() ? "" : ": ", job.reason);
  initial.job = std::move(job);
  return hub_->Subscribe(initial, ++next_seq_);
}

void Scheduler::EmitLocked(const Job& job, bool terminal, std::string message, Outbox& out) {
  JobEvent event;
  event.job = job;
  event.terminal = terminal;
  event.message = std::move(message);
  out.events.emplace_back(std::move(event), ++next_seq_);
}

void Scheduler::Flush(Outbox& out) {
  for (auto& [event, seq] : out.events) hub_->Publish(event, seq);
  out.events.clear();
}

absl::StatusOr<std::vector<Job>> Scheduler::Purge(TimePoint finished_before) {
  RETURN_IF_ERROR(unavailable_);
  absl::MutexLock lock(&mu_);
  std::vector<Job> purged;
  // Batches of the newest matching jobs until none is left (each batch is deleted).
  while (true) {
    JobFilter filter;
    filter.states = {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled};
    filter.finished_before = finished_before;
    filter.parent_id = JobId();  // top-level jobs: children go with their sweep
    filter.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->List(filter));
    std::vector<Job> batch;
    for (Job& job : jobs) {
      if (running_.count(job.id)) continue;
      if (IsParentKind(job.kind)) {
        ASSIGN_OR_RETURN(std::vector<Job> children, store_->Children(job.id));
        bool all_finished = true;
        for (const Job& child : children) all_finished &= IsTerminal(child.state);
        if (!all_finished) continue;
        for (Job& child : children) batch.push_back(std::move(child));
      }
      batch.push_back(std::move(job));
    }
    if (batch.empty()) break;
    std::vector<JobId> ids;
    for (const Job& job : batch) ids.push_back(job.id);
    RETURN_IF_ERROR(store_->Delete(ids));
    for (Job& job : batch) {
      metrics_.RemoveJob(job.id);
      purged.push_back(std::move(job));
    }
    if (jobs.size() < 1000) break;
  }
  if (!purged.empty()) {
    ASSIGN_OR_RETURN(auto counts, store_->CountByState());
    metrics_.SetStateCounts(counts);
    LOG(INFO) << "purged " << purged.size() << " finished job(s)";
  }
  return purged;
}

absl::StatusOr<std::vector<Job>> Scheduler::ActiveJobs() {
  RETURN_IF_ERROR(unavailable_);
  absl::MutexLock lock(&mu_);
  std::vector<Job> active;
  for (JobState state : {JobState::kQueued, JobState::kRunning}) {
    JobFilter filter;
    filter.states = {state};
    filter.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Job> jobs, store_->List(filter));
    for (Job& job : jobs) active.push_back(std::move(job));
  }
  return active;
}

void Scheduler::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      for (auto& [id, run] : running_) run->interrupted = true;
    }
    cv_.SignalAll();
    maintenance_cv_.SignalAll();
    for (std::thread& worker : workers_) worker.join();
    if (maintenance_.joinable()) maintenance_.join();
    hub_->EndAll();
  });
}

}  // namespace segserve::scheduler
