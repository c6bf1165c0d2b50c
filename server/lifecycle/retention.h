// File: server/lifecycle/retention.h — what stays of a job's files under
// <data_dir>/runs/<job>/ once it finished, and purging finished jobs:
//  - a TRAIN job that SUCCEEDED (its model registered: registered.json) keeps only the
//    checkpoints --keep_run_checkpoints names: none (default; the registered model is the
//    product), best (best.ckpt) or all; registered.json and other small files stay;
//  - a FAILED or CANCELLED job keeps its run directory (last checkpoint, optimizer state)
//    for --failed_run_retention, then a periodic sweep on a background thread removes it;
//  - Purge removes finished jobs' records and run directories (Scheduler::Purge decides
//    which: never a queued or running job);
//  - the sweep also removes run directories whose job no longer exists (a crash between
//    a purge's record delete and its file delete).
// Every directory removal is atomic (common::RemoveDirectoryDurably). Ages come from the
// injected clock's WallNow(), so tests move time instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/clock.h"
#include "server/scheduler/scheduler.h"

namespace segserve::lifecycle {

enum class KeepCheckpoints { kNone, kBest, kAll };
// "none", "best", "all".
absl::StatusOr<KeepCheckpoints> ParseKeepCheckpoints(const std::string& text);

struct RetentionOptions {
  std::string data_dir;
  KeepCheckpoints keep = KeepCheckpoints::kNone;
  std::chrono::seconds failed_run_retention{7 * 24 * 3600};
  // How often the background sweep runs.
  std::chrono::milliseconds sweep_interval{std::chrono::hours(1)};
  // Called after files were removed (e.g. DiskUsageMonitor::Refresh).
  std::function<void()> on_change;
  // Called with a job's id whenever its run directory is removed (a purge, the failed-run
  // sweep): drops the checkpoints kept for it elsewhere (training::RunCheckpoints::Remove,
  // large objects). Empty: nothing else to drop.
  std::function<absl::Status(const std::string& job_id)> forget_saved_checkpoints;
};

struct SweepResult {
  std::vector<std::string> removed_run_dirs;  // job ids
  int64_t freed_bytes = 0;
};

struct PurgeResult {
  std::vector<scheduler::Job> jobs;
  int64_t freed_bytes = 0;
};

class RunRetention {
 public:
  // `clock` not owned; null = the real clock.
  RunRetention(RetentionOptions options, common::Clock* clock);
  ~RunRetention();  // Stop()
  RunRetention(const RunRetention&) = delete;
  RunRetention& operator=(const RunRetention&) = delete;

  // The scheduler whose jobs Sweep and Purge look at (set before Start, Sweep, Purge).
  void Attach(scheduler::Scheduler* scheduler) { scheduler_ = scheduler; }

  // A job reached a terminal state (SchedulerOptions::on_finished): applies the keep
  // policy to a SUCCEEDED TRAIN job whose model is registered. Returns the bytes freed.
  int64_t OnJobFinished(const scheduler::Job& job);

  // Removes the run directories of FAILED/CANCELLED jobs older than failed_run_retention
  // and of jobs that no longer exist; applies the keep policy to SUCCEEDED TRAIN jobs that
  // still hold checkpoints (e.g. finished while the server was stopping).
  absl::StatusOr<SweepResult> Sweep();

  // Removes finished jobs that finished more than `older_than` ago: records first, then
  // run directories (a crash in between leaves directories the sweep removes).
  absl::StatusOr<PurgeResult> Purge(std::chrono::seconds older_than);

  // Starts / stops the periodic sweep thread.
  void Start();
  void Stop();

 private:
  std::string RunDir(const std::string& job_id) const;
  int64_t RemoveRunDir(const std::string& job_id);
  void Loop();

  const RetentionOptions options_;
  common::Clock* const clock_;
  scheduler::Scheduler* scheduler_ = nullptr;
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segserve::lifecycle
