// The shared-store side of Scheduler (SchedulerOptions::shared_store): lease heartbeats,
// re-queueing jobs whose worker stopped renewing, completing parents whose last child ended
// on another replica, and streaming jobs that run elsewhere to this replica's watchers.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/log.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/scheduler_internal.h"

namespace segserve::scheduler {

namespace {

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "host";
  return host;
}

}  // namespace

bool IsGoneLocalWorker(const std::string& owner) {
  // "<host>-<pid>-<hex>", parsed from the right (host names contain '-').
  const size_t last = owner.rfind('-');
  if (last == std::string::npos || last == 0) return false;
  const size_t middle = owner.rfind('-', last - 1);
  if (middle == std::string::npos) return false;
  if (owner.substr(0, middle) != HostName()) return false;
  const std::string pid_text = owner.substr(middle + 1, last - middle - 1);
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos ||
      pid_text.size() > 9) {
    return false;
  }
  const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  if (pid == ::getpid()) return true;  // our pid, another incarnation (a restarted container)
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::string DefaultWorkerId() {
  std::random_device random;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "-%d-%04x", static_cast<int>(::getpid()), random() & 0xffff);
  return HostName() + buf;
}

void Scheduler::MarkLostLocked(RunningJob& run, const absl::Status& why) {
  if (run.lost.exchange(true)) return;
  metrics_.LeaseLost();
  LOG(WARNING) << "job " << run.job.id << " attempt " << run.job.attempt << " on " << worker_id_
               << " lost its lease; stopping it, its further writes are dropped: " << why;
}

absl::Status Scheduler::RunWrite(RunningJob& run,
                                 const std::function<absl::Status()>& write) {
  // Shared store: a database that is briefly away (a restart, a failover) must not fail the
  // job, so an Unavailable write is retried for up to one lease; after that the lease has
  // run out in the database anyway and the run stops as lost (the job is re-queued there).
  const auto give_up = std::chrono::steady_clock::now() + options_.lease;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (run.lost) {
        return absl::AbortedError(absl::StrCat("job ", run.job.id, " attempt ",
                                               run.job.attempt, " lost its lease"));
      }
      absl::Status status = write();
      if (status.code() == absl::StatusCode::kAborted) MarkLostLocked(run, status);
      if (!options_.shared_store || status.code() != absl::StatusCode::kUnavailable) {
        return status;
      }
      if (stopping_ || std::chrono::steady_clock::now() >= give_up) {
        absl::Status lost = absl::AbortedError(absl::StrCat(
            "job ", run.job.id, ": the job database stayed unreachable for the lease (",
            status.message(), "); stopping, the job is re-queued once it is back"));
        MarkLostLocked(run, lost);
        return lost;
      }
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
}

absl::Status Scheduler::CheckLease(RunningJob& run) {
  if (!options_.shared_store) {
    absl::MutexLock lock(&mu_);
    if (!run.lost) return absl::OkStatus();
    return absl::AbortedError(absl::StrCat("job ", run.job.id, " lost its lease"));
  }
  return RunWrite(run, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return store_->RenewLease(run.job.id, run.job.attempt, options_.lease).status();
  });
}

void Scheduler::MaintenanceLoop() {
  // Leases every lease/3; watchers of jobs elsewhere and the queue depth every poll_interval.
  const absl::Duration lease_interval = absl::FromChrono(options_.lease) / 3;
  const absl::Duration interval =
      std::min(lease_interval, absl::FromChrono(options_.poll_interval));
  absl::Time next_lease_pass = absl::InfinitePast();
  while (true) {
    const bool leases = absl::Now() >= next_lease_pass;
    if (leases) next_lease_pass = absl::Now() + lease_interval;
    MaintainOnce(leases);
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + interval;
    while (!stopping_) {
      if (maintenance_cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
    }
    if (stopping_) return;
  }
}

void Scheduler::MaintainOnce(bool leases) {
  if (options_.maintenance_paused_for_testing && options_.maintenance_paused_for_testing()) return;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    // 1. Heartbeats; a cancel requested on any replica reaches the run here.
    for (auto& [id, run] : running_) {
      if (!leases) break;
      if (run->lost) continue;
      absl::StatusOr<bool> cancel = store_->RenewLease(id, run->job.attempt, options_.lease);
      if (cancel.status().code() == absl::StatusCode::kAborted) {
        MarkLostLocked(*run, cancel.status());
      } else if (!cancel.ok()) {
        LOG(WARNING) << "job " << id << ": cannot renew its lease: " << cancel.status();
      } else if (*cancel && !run->cancel) {
        run->job.cancel_requested = true;
        run->cancel = true;
        EmitLocked(run->job, /*terminal=*/false, "cancel requested", out);
      }
    }
    // 2. Jobs whose worker died or was paused past its lease.
    absl::StatusOr<std::vector<Job>> expired =
        leases ? store_->RequeueExpired(WallNow()) : std::vector<Job>{};
    if (!expired.ok()) {
      LOG(WARNING) << "scheduler: cannot re-queue expired leases: " << expired.status();
    } else {
      metrics_.LeasesExpired(static_cast<int64_t>(expired->size()));
      for (const Job& job : *expired) {
        LOG(WARNING) << "job " << job.id << ": " << job.reason << " (now "
                     << JobStateName(job.state) << ")";
        auto local = running_.find(job.id);
        if (local != running_.end()) MarkLostLocked(*local->second, absl::AbortedError(job.reason));
        metrics_.Transition(JobState::kRunning, job.state);
        EmitLocked(job, IsTerminal(job.state), job.reason, out);
        if (!job.parent_id.empty()) {
          absl::Status parent = UpdateParentLocked(job.parent_id, out);
          if (!parent.ok()) LOG(WARNING) << "scheduler: parent " << job.parent_id << ": " << parent;
        }
      }
    }
    // 3. Parents whose last child ended where the parent update was lost (a replica died
    // between the two writes).
    for (JobKind parent_kind : {JobKind::kSweep, JobKind::kExperiment}) {
      if (!leases) break;
      JobFilter filter;
      filter.kind = parent_kind;
      filter.states = {JobState::kQueued, JobState::kRunning};
      filter.limit = 1000;
      absl::StatusOr<std::vector<Job>> parents = store_->List(filter);
      if (!parents.ok()) break;
      for (const Job& parent : *parents) {
        absl::StatusOr<std::vector<Job>> children = store_->Children(parent.id);
        if (!children.ok()) continue;
        bool all_done = !children->empty();
        for (const Job& child : *children) all_done &= IsTerminal(child.state);
        if (all_done) {
          absl::Status status = UpdateParentLocked(parent.id, out);
          if (!status.ok()) LOG(WARNING) << "scheduler: parent " << parent.id << ": " << status;
        }
      }
    }
    // 4. Queue depth and state counts as the whole cluster sees them.
    if (absl::StatusOr<int64_t> queued = store_->CountRunnableQueued(); queued.ok()) {
      queued_ = *queued;
      metrics_.SetQueueDepth(queued_);
      if (queued_ > 0) cv_.SignalAll();
    }
    if (auto counts = store_->CountByState(); counts.ok()) metrics_.SetStateCounts(*counts);
    // 5. Watched jobs that run (or are queued) elsewhere: stream what changed.
    std::map<JobId, std::string> seen;
    for (const JobId& id : hub_->WatchedJobs()) {
      if (running_.count(id)) continue;
      absl::StatusOr<Job> job = store_->Get(id);
      if (!job.ok()) continue;
      std::string key = absl::StrCat(JobStateName(job->state), "|", job->attempt, "|",
                                     job->reason, "|", job->cancel_requested, "|",
                                     job->progress.ToJson());
      auto before = remote_seen_.find(id);
      if (before == remote_seen_.end() || before->second != key) {
        const bool terminal = IsTerminal(job->state);
        std::string message =
            terminal || job->state == JobState::kQueued
                ? absl::StrCat(JobStateName(job->state), job->reason.empty() ? "" : ": ",
                               job->reason)
                : absl::StrCat(job->progress.Summary(),
                               job->owner.empty() ? "" : absl::StrCat(" (on ", job->owner, ")"));
        EmitLocked(*job, terminal, std::move(message), out);
      }
      seen[id] = std::move(key);
    }
    remote_seen_ = std::move(seen);
  }
  Flush(out);
}

}  // namespace segserve::scheduler
