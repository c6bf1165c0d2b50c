// File: server/scheduler/scheduler_internal.h — Scheduler's private types, shared by
// scheduler.cc and scheduler_worker.cc. Not for use outside server/scheduler/.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "server/scheduler/scheduler.h"

namespace segserve::scheduler {

struct Scheduler::RunningJob {
  Job job;                          // Snapshot with the latest progress; guarded by Scheduler::mu_.
  std::atomic<bool> cancel{false};  // Cancelled by a user.
  std::atomic<bool> interrupted{false};  // Scheduler shutting down.
  std::atomic<bool> lost{false};  // The lease was lost: another worker may run the job now.
  std::chrono::steady_clock::time_point last_persist{};
  std::chrono::steady_clock::time_point last_parent_progress{};  // EmitParentProgressLocked
};

class Scheduler::Context : public JobContext {
 public:
  Context(Scheduler* scheduler, std::shared_ptr<RunningJob> run)
      : scheduler_(scheduler), run_(std::move(run)) {}
  bool cancelled() const override { return run_->cancel || run_->interrupted || run_->lost; }
  absl::Status CheckLease() override { return scheduler_->CheckLease(*run_); }
  void ReportProgress(const JobProgress& progress) override {
    scheduler_->OnProgress(*run_, progress);
  }
  absl::Status MarkEpochCompleted(int epoch) override {
    return scheduler_->OnEpochCompleted(*run_, epoch);
  }
  void AddTrainingImages(int64_t images) override {
    scheduler_->metrics_.AddTrainingImages(images);
  }
  void AddTrainingStepTime(double step_seconds, double loader_wait_seconds) override {
    scheduler_->metrics_.AddTrainingStepTime(step_seconds, loader_wait_seconds);
  }
  void Note(const std::string& message) override { scheduler_->OnNote(*run_, message); }
  void SetResult(std::string result_json) override { result_ = std::move(result_json); }
  std::string TakeResult() { return std::move(result_); }

 private:
  Scheduler* const scheduler_;
  const std::shared_ptr<RunningJob> run_;
  std::string result_ = "{}";
};

}  // namespace segserve::scheduler
