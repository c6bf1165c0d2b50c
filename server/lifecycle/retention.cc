#include "server/lifecycle/retention.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/dir_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"

namespace segserve::lifecycle {
namespace fs = std::filesystem;
namespace {

// Checkpoint files of a run directory (training_runner.h lists them).
bool IsCheckpoint(const std::string& filename) {
  return absl::EndsWith(filename, ".ckpt") || absl::EndsWith(filename, ".optim") ||
         absl::EndsWith(filename, ".damaged") || absl::StrContains(filename, ".ckpt.tmp") ||
         absl::StrContains(filename, ".optim.tmp");
}

}  // namespace

absl::StatusOr<KeepCheckpoints> ParseKeepCheckpoints(const std::string& text) {
  if (text == "none") return KeepCheckpoints::kNone;
  if (text == "best") return KeepCheckpoints::kBest;
  if (text == "all") return KeepCheckpoints::kAll;
  return absl::InvalidArgumentError(
      absl::StrCat("--keep_run_checkpoints: expected none, best or all, got '", text, "'"));
}

RunRetention::RunRetention(RetentionOptions options, common::Clock* clock)
    : options_(std::move(options)), clock_(clock ? clock : common::Clock::Real()) {}

RunRetention::~RunRetention() { Stop(); }

std::string RunRetention::RunDir(const std::string& job_id) const {
  return options_.data_dir + "/runs/" + job_id;
}

int64_t RunRetention::RemoveRunDir(const std::string& job_id) {
  if (options_.forget_saved_checkpoints) {
    if (absl::Status forgot = options_.forget_saved_checkpoints(job_id); !forgot.ok()) {
      LOG(WARNING) << "cannot drop the saved checkpoints of job " << job_id << ": " << forgot;
    }
  }
  absl::StatusOr<int64_t> removed = common::RemoveDirectoryDurably(RunDir(job_id));
  if (removed.ok()) return *removed;
  if (removed.status().code() != absl::StatusCode::kNotFound) {
    LOG(WARNING) << "cannot remove the run directory of job " << job_id << ": " << removed.status();
  }
  return 0;
}

int64_t RunRetention::OnJobFinished(const scheduler::Job& job) {
  if (job.kind != scheduler::JobKind::kTrain || job.state != scheduler::JobState::kSucceeded ||
      options_.keep == KeepCheckpoints::kAll) {
    return 0;
  }
  const std::string dir = RunDir(job.id);
  std::error_code ec;
  if (!fs::exists(dir + "/registered.json", ec)) return 0;  // the model is the product
  int64_t freed = 0;
  std::vector<fs::path> doomed;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string filename = entry.path().filename().string();
    if (!IsCheckpoint(filename)) continue;
    if (options_.keep == KeepCheckpoints::kBest && filename == "best.ckpt") continue;
    doomed.push_back(entry.path());
  }
  for (const fs::path& path : doomed) {
    std::error_code inner;
    const auto size = fs::file_size(path, inner);
    if (fs::remove(path, inner)) {
      freed += static_cast<int64_t>(size);
    } else if (inner) {
      LOG(WARNING) << "cannot remove " << path.string() << ": " << inner.message();
    }
  }
  if (!doomed.empty()) {
    LOG(INFO) << "job " << job.id << ": removed " << doomed.size() << " checkpoint file(s), "
              << freed << " bytes (--keep_run_checkpoints)";
    if (options_.on_change) options_.on_change();
  }
  return freed;
}

absl::StatusOr<SweepResult> RunRetention::Sweep() {
  if (scheduler_ == nullptr) return absl::FailedPreconditionError("no scheduler attached");
  RETURN_IF_ERROR(scheduler_->availability());
  SweepResult result;
  // Failed and cancelled jobs past their retention.
  scheduler::JobFilter old_failures;
  old_failures.states = {scheduler::JobState::kFailed, scheduler::JobState::kCancelled};
  old_failures.finished_before = clock_->WallNow() - options_.failed_run_retention;
  old_failures.limit = 1000;
  ASSIGN_OR_RETURN(std::vector<scheduler::Job> jobs, scheduler_->List(old_failures));
  std::error_code ec;
  for (const scheduler::Job& job : jobs) {
    if (!fs::exists(RunDir(job.id), ec)) continue;
    result.freed_bytes += RemoveRunDir(job.id);
    result.removed_run_dirs.push_back(job.id);
    LOG(INFO) << "job " << job.id << " (" << scheduler::JobStateName(job.state)
              << "): run directory removed after --failed_run_retention";
  }
  // Succeeded training jobs that still hold checkpoints the policy does not keep.
  scheduler::JobFilter succeeded;
  succeeded.states = {scheduler::JobState::kSucceeded};
  succeeded.kind = scheduler::JobKind::kTrain;
  succeeded.limit = 1000;
  ASSIGN_OR_RETURN(jobs, scheduler_->List(succeeded));
  for (const scheduler::Job& job : jobs) result.freed_bytes += OnJobFinished(job);
  // Run directories whose job is gone (purged records, files left by a crash).
  std::vector<std::string> orphans;
  for (const auto& entry : fs::directory_iterator(options_.data_dir + "/runs", ec)) {
    const std::string id = entry.path().filename().string();
    if (id.empty() || id[0] == '.' || !entry.is_directory()) continue;
    if (scheduler_->Get(id).status().code() == absl::StatusCode::kNotFound) {
      orphans.push_back(id);
    }
  }
  for (const std::string& id : orphans) {
    result.freed_bytes += RemoveRunDir(id);
    result.removed_run_dirs.push_back(id);
    LOG(INFO) << "run directory of unknown job " << id << " removed";
  }
  if (!result.removed_run_dirs.empty() && options_.on_change) options_.on_change();
  return result;
}

absl::StatusOr<PurgeResult> RunRetention::Purge(std::chrono::seconds older_than) {
  if (scheduler_ == nullptr) return absl::FailedPreconditionError("no scheduler attached");
  if (older_than.count() < 0) {
    return absl::InvalidArgumentError("older_than_seconds: must be >= 0");
  }
  PurgeResult result;
  ASSIGN_OR_RETURN(result.jobs, scheduler_->Purge(clock_->WallNow() - older_than));
  for (const scheduler::Job& job : result.jobs) result.freed_bytes += RemoveRunDir(job.id);
  if (!result.jobs.empty() && options_.on_change) options_.on_change();
  return result;
}

void RunRetention::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void RunRetention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void RunRetention::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Unlock();
    absl::StatusOr<SweepResult> swept = Sweep();
    if (!swept.ok()) LOG(WARNING) << "run retention sweep: " << swept.status();
    mu_.Lock();
    const absl::Time until = absl::Now() + absl::FromChrono(options_.sweep_interval);
    while (!stopping_) {
      if (cv_.WaitWithDeadline(&mu_, until)) break;  // timed out
    }
    if (stopping_) return;
  }
}

}  // namespace segserve::lifecycle
