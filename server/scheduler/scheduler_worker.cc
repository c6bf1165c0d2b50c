// The worker side of Scheduler: starting jobs, progress from runners, finishing jobs and
// their sweep parents. The public API side is in scheduler.cc.
#include <algorithm>
#include <exception>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/scheduler_internal.h"
#include "server/scheduler/sweep.h"

namespace segserve::scheduler {
namespace {

// Pause after a store error before the worker retries, so a broken disk does not spin.
constexpr absl::Duration kStoreErrorBackoff = absl::Seconds(1);

}  // namespace

void Scheduler::WorkerLoop() {
  while (true) {
    Outbox out;
    std::shared_ptr<RunningJob> run;
    Job job;  // The runner's copy: run->job changes under mu_ while it runs.
    {
      absl::MutexLock lock(&mu_);
      if (options_.shared_store) {
        // Jobs are submitted on other replicas too: poll (woken early by local submits).
        if (queued_ <= 0 && !stopping_) {
          cv_.WaitWithTimeout(&mu_, absl::FromChrono(options_.poll_interval));
        }
      } else {
        while (!stopping_ && queued_ <= 0) cv_.Wait(&mu_);
      }
      if (stopping_) return;
      bool store_error = false;
      run = StartNextLocked(out, store_error);
      if (run == nullptr && !store_error && options_.shared_store) continue;
      if (run == nullptr) {
        // Store error or a count out of step with the store: back off (woken early by
        // Shutdown) and try again.
        const absl::Time until = absl::Now() + kStoreErrorBackoff;
        while (!stopping_) {
          if (cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
        }
        continue;
      }
      job = run->job;
    }
    Flush(out);
    Context ctx(this, run);
    absl::Status status;
    auto runner = runners_.find(job.kind);
    if (runner == runners_.end()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("this server runs no ", JobKindName(job.kind), " jobs"));
    } else {
      try {
        status = runner->second->Run(job, ctx);
      } catch (const std::exception& e) {
        status = absl::InternalError(absl::StrCat("runner threw: ", e.what()));
      } catch (...) {
        status = absl::InternalError("runner threw a non-standard exception");
      }
    }
    Finish(run, status, ctx.TakeResult());
  }
}

std::shared_ptr<Scheduler::RunningJob> Scheduler::StartNextLocked(Outbox& out,
                                                                   bool& store_error) {
  absl::StatusOr<std::optional<Job>> next = store_->Claim(worker_id_, options_.lease, WallNow());
  if (!next.ok()) {
    LOG(ERROR) << "scheduler: cannot claim the next job: " << next.status();
    store_error = true;
    return nullptr;
  }
  if (!next->has_value()) {
    absl::StatusOr<int64_t> queued = store_->CountRunnableQueued();
    if (queued.ok()) queued_ = *queued;
    metrics_.SetQueueDepth(queued_);
    return nullptr;
  }
  auto run = std::make_shared<RunningJob>();
  run->job = std::move(**next);
  const Job& job = run->job;
  run->last_persist = clock_->Now();
  queued_ = std::max<int64_t>(0, queued_ - 1);
  running_[job.id] = run;
  metrics_.Transition(JobState::kQueued, JobState::kRunning);
  metrics_.SetQueueDepth(queued_);
  EmitLocked(job, /*terminal=*/false,
             job.last_completed_epoch > 0
                 ? absl::StrCat("started (resuming after epoch ", job.last_completed_epoch, ")")
                 : "started",
             out);
  LOG(INFO) << "job " << job.id << " (" << JobKindName(job.kind) << ") started"
            << (job.restarts ? absl::StrCat(", restart ", job.restarts) : "")
            << (options_.shared_store ? absl::StrCat(", attempt ", job.attempt, " on ", worker_id_)
                                      : "");
  if (!job.parent_id.empty()) {
    absl::Status parent = UpdateParentLocked(job.parent_id, out);
    if (!parent.ok()) {
      LOG(ERROR) << "scheduler: sweep " << job.parent_id << ": " << parent;
    }
  }
  return run;
}

void Scheduler::EraseRunLocked(const std::shared_ptr<RunningJob>& run) {
  // Only this run's entry: after a lost lease the same job may already run again here.
  auto it = running_.find(run->job.id);
  if (it != running_.end() && it->second == run) running_.erase(it);
}

void Scheduler::Finish(const std::shared_ptr<RunningJob>& run, const absl::Status& status,
                       std::string result_json) {
  Outbox out;
  std::optional<Job> finished;
  {
    absl::MutexLock lock(&mu_);
    Job& job = run->job;
    if (run->lost) {
      // Another worker owns the job now (or it was re-queued): this run's outcome is
      // dropped, nothing is written, watchers hear of the job from its new run.
      LOG(WARNING) << "job " << job.id << " attempt " << job.attempt
                   << " lost its lease; its outcome (" << status << ") is dropped";
      EraseRunLocked(run);
      metrics_.RemoveJob(job.id);
      return;
    }
    std::string message;
    if (status.ok()) {
      job.state = JobState::kSucceeded;
      job.reason.clear();
      job.result_json = std::move(result_json);
      message = "succeeded";
    } else if (run->cancel) {
      job.state = JobState::kCancelled;
      job.reason = "cancelled by request";
      message = "cancelled";
    } else if (run->interrupted) {
      // Any error while shutting down counts as the interruption: re-running is safe,
      // failing a healthy job is not.
      job.state = JobState::kQueued;
      job.restarts += 1;
      job.reason =
          absl::StrCat("interrupted by shutdown; resumes after epoch ", job.last_completed_epoch);
      message = job.reason;
    } else {
      job.state = JobState::kFailed;
      job.reason = status.ToString();
      message = "failed: " + job.reason;
    }
    if (IsTerminal(job.state)) job.finished = WallNow();
    const int attempt = job.attempt;
    job.owner.clear();
    absl::Status saved = store_->Update(job, Fence{attempt, std::nullopt});
    if (saved.code() == absl::StatusCode::kAborted) {
      LOG(WARNING) << "job " << job.id << " attempt " << attempt
                   << " lost its lease before it could record " << JobStateName(job.state)
                   << "; dropped: " << saved;
      EraseRunLocked(run);
      metrics_.RemoveJob(job.id);
      return;
    }
    if (!saved.ok()) {
      // The row still says RUNNING: the next start re-queues the job, nothing is lost.
      LOG(ERROR) << "scheduler: cannot record job " << job.id << " as " << JobStateName(job.state)
                 << ": " << saved;
    }
    EraseRunLocked(run);
    if (job.state == JobState::kQueued) ++queued_;
    metrics_.Transition(JobState::kRunning, job.state);
    metrics_.SetQueueDepth(queued_);
    metrics_.RemoveJob(job.id);
    EmitLocked(job, IsTerminal(job.state), message, out);
    LOG(INFO) << "job " << job.id << " " << message;
    if (!job.parent_id.empty()) {
      absl::Status parent = UpdateParentLocked(job.parent_id, out);
      if (!parent.ok()) {
        LOG(ERROR) << "scheduler: sweep " << job.parent_id << ": " << parent;
      }
    }
    if (IsTerminal(job.state)) finished = job;
  }
  // Before watchers hear of the end: whoever sees the terminal event sees its effects
  // (e.g. run-directory retention applied).
  if (finished && options_.on_finished) options_.on_finished(*finished);
  Flush(out);
}

void Scheduler::OnProgress(RunningJob& run, const JobProgress& progress) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    run.job.progress = progress;
    auto now = clock_->Now();
    if (now - run.last_persist >= options_.progress_persist_interval) {
      absl::Status status = store_->UpdateProgress(run.job.id, progress, run.job.attempt);
      if (status.code() == absl::StatusCode::kAborted) {
        MarkLostLocked(run, status);
      } else if (!status.ok()) {
        LOG(WARNING) << "job " << run.job.id << ": " << status;
      }
      run.last_persist = now;
    }
    metrics_.SetJobProgress(run.job.id, progress.epoch, progress.val_iou);
    EmitLocked(run.job, /*terminal=*/false, progress.Summary(), out);
    if (!run.job.parent_id.empty() &&
        now - run.last_parent_progress >= options_.parent_progress_interval) {
      run.last_parent_progress = now;
      EmitParentProgressLocked(run.job.parent_id, out);
    }
  }
  Flush(out);
}

bool Scheduler::ParentProgressLocked(const Job& parent, JobProgress* progress,
                                     std::string* summary) {
  absl::StatusOr<std::vector<Job>> children = store_->Children(parent.id);
  if (!children.ok() || children->empty()) return false;
  int finished = 0;
  double done = 0;
  std::vector<std::string> running;
  for (const Job& child : *children) {
    if (IsTerminal(child.state)) {
      ++finished;
      done += 1;
      continue;
    }
    auto it = running_.find(child.id);
    // A child running on another replica: its progress as last stored there.
    const JobProgress& p = it != running_.end() ? it->second->job.progress : child.progress;
    if (child.state != JobState::kRunning) continue;
    done += std::clamp(p.fraction, 0.0, 1.0);
    running.push_back(p.epochs > 0 ? absl::StrCat(child.id, " epoch ", p.epoch, "/", p.epochs)
                                   : child.id);
  }
  const double n = static_cast<double>(children->size());
  *progress = JobProgress();
  progress->step = finished;
  progress->steps = static_cast<int64_t>(children->size());
  progress->fraction = done / n;
  const double elapsed = parent.started == TimePoint{}
                             ? 0
                             : std::chrono::duration<double>(WallNow() - parent.started).count();
  if (progress->fraction > 0.005 && elapsed > 0) {
    progress->eta_seconds = elapsed * (1 - progress->fraction) / progress->fraction;
  }
  if (summary != nullptr) {
    *summary = absl::StrCat(finished, "/", children->size(), " configurations done",
                            running.empty() ? "" : "; running ", absl::StrJoin(running, ", "));
  }
  return true;
}

void Scheduler::WithParentProgressLocked(Job& job) {
  if (!IsParentKind(job.kind) || IsTerminal(job.state)) return;
  JobProgress progress;
  if (ParentProgressLocked(job, &progress, nullptr)) job.progress = progress;
}

void Scheduler::EmitParentProgressLocked(const JobId& parent_id, Outbox& out) {
  absl::StatusOr<Job> parent = store_->Get(parent_id);
  if (!parent.ok() || IsTerminal(parent->state)) return;
  std::string summary;
  if (!ParentProgressLocked(*parent, &parent->progress, &summary)) return;
  EmitLocked(*parent, /*terminal=*/false, std::move(summary), out);
}

void Scheduler::OnNote(RunningJob& run, const std::string& message) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    LOG(WARNING) << "job " << run.job.id << ": " << message;
    run.job.reason = message;
    absl::Status status = store_->Update(run.job, Fence{run.job.attempt, std::nullopt});
    if (status.code() == absl::StatusCode::kAborted) {
      MarkLostLocked(run, status);
    } else if (!status.ok()) {
      LOG(WARNING) << "job " << run.job.id << ": " << status;
    }
    EmitLocked(run.job, /*terminal=*/false, message, out);
  }
  Flush(out);
}

absl::Status Scheduler::OnEpochCompleted(RunningJob& run, int epoch) {
  RETURN_IF_ERROR(RunWrite(run, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return store_->UpdateLastCompletedEpoch(run.job.id, epoch, run.job.attempt);
  }));
  absl::MutexLock lock(&mu_);
  run.job.last_completed_epoch = epoch;
  absl::Status progress = store_->UpdateProgress(run.job.id, run.job.progress, run.job.attempt);
  if (progress.code() == absl::StatusCode::kAborted) {
    MarkLostLocked(run, progress);
    return progress;
  }
  // The epoch mark is what a resume needs; a progress row that did not make it is rewritten
  // at the next report.
  if (!progress.ok()) LOG(WARNING) << "job " << run.job.id << ": " << progress;
  run.last_persist = clock_->Now();
  return absl::OkStatus();
}

absl::Status Scheduler::UpdateParentLocked(const JobId& parent_id, Outbox& out) {
  ASSIGN_OR_RETURN(Job parent, store_->Get(parent_id));
  if (IsTerminal(parent.state)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<Job> children, store_->Children(parent_id));
  SweepOutcome outcome = SweepOutcomeOf(children, parent.cancel_requested);
  JobState before = parent.state;
  bool any_started = false;
  for (const Job& child : children) any_started |= child.state != JobState::kQueued;
  parent.progress = outcome.progress;
  parent.result_json = SweepResultJson(children);
  std::string message;
  if (outcome.finished && parent.kind == JobKind::kExperiment && !parent.cancel_requested &&
      options_.experiment_report) {
    // Once: the parent is terminal after this update and never comes back here.
    absl::StatusOr<std::string> report = options_.experiment_report(parent, children);
    if (report.ok()) {
      parent.result_json = ExperimentResultJson(children, *report);
    } else {
      LOG(ERROR) << "experiment " << parent.id << ": report: " << report.status();
      outcome.state = JobState::kFailed;
      outcome.reason = absl::StrCat(outcome.reason, outcome.reason.empty() ? "" : "; ",
                                    "report: ", report.status().ToString());
    }
  }
  if (outcome.finished) {
    parent.state = outcome.state;
    parent.reason = outcome.reason;
    parent.finished = WallNow();
    if (parent.started == TimePoint{}) parent.started = parent.finished;
    message =
        absl::StrCat(parent.kind == JobKind::kExperiment ? "experiment " : "sweep ",
                     JobStateName(parent.state), parent.reason.empty() ? "" : ": ", parent.reason);
  } else {
    if (any_started && parent.state == JobState::kQueued) {
      parent.state = JobState::kRunning;
      parent.started = WallNow();
    }
    int done = 0;
    for (const Job& child : children) done += IsTerminal(child.state);
    message = absl::StrCat(done, "/", children.size(), " configurations finished");
  }
  // Fenced on the state read: another replica may have finished the parent meanwhile
  // (then its update stands; a progress-only update lost this way is redone next time).
  absl::Status saved = store_->Update(parent, Fence{0, before});
  if (saved.code() == absl::StatusCode::kAborted) return absl::OkStatus();
  RETURN_IF_ERROR(saved);
  if (parent.state != before) metrics_.Transition(before, parent.state);
  EmitLocked(parent, IsTerminal(parent.state), message, out);
  return absl::OkStatus();
}

}  // namespace segserve::scheduler
