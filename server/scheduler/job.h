// File: server/scheduler/job.h — the scheduler's domain types: a job record, its
// progress, list filters and watch events. Plain structs (no proto); server/api converts.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve::scheduler {

using JobId = std::string;
using TimePoint = std::chrono::system_clock::time_point;

enum class JobKind { kTrain = 1, kSweep = 2, kAnalysis = 3, kSynth = 4, kExperiment = 5 };
enum class JobState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };

// "TRAIN", "SWEEP", ... / "QUEUED", "RUNNING", ... (also the names stored in jobs.db).
const char* JobKindName(JobKind kind);
const char* JobStateName(JobState state);
absl::StatusOr<JobKind> ParseJobKind(const std::string& name);
absl::StatusOr<JobState> ParseJobState(const std::string& name);
bool IsTerminal(JobState state);
// SWEEP and EXPERIMENT: parents of child jobs; they occupy no worker slot and finish when
// their last child does.
bool IsParentKind(JobKind kind);
inline constexpr JobState kAllJobStates[] = {JobState::kQueued, JobState::kRunning,
                                             JobState::kSucceeded, JobState::kFailed,
                                             JobState::kCancelled};

// What a runner last reported. Mirrors segserve.v1.Progress.
struct JobProgress {
  int epoch = 0;  // current epoch, 1-based; 0 before the first.
  int epochs = 0;
  int64_t step = 0;  // steps done in this epoch.
  int64_t steps = 0;
  double loss = 0;
  double val_iou = 0;
  double best_val_iou = 0;
  double images_per_second = 0;
  double eta_seconds = 0;
  double fraction = 0;  // 0..1 overall.

  std::string ToJson() const;
  static absl::StatusOr<JobProgress> FromJson(const std::string& json);
  // "epoch 3/50 step 10/100 loss 0.4210 val_iou 0.7100".
  std::string Summary() const;
};

struct Job {
  JobId id;
  JobKind kind = JobKind::kTrain;
  JobState state = JobState::kQueued;
  std::string reason;            // why FAILED / CANCELLED; why re-queued.
  int priority = 0;              // higher runs first; FIFO among equals.
  JobId parent_id;               // the sweep/experiment this job belongs to; empty otherwise.
  std::vector<JobId> child_ids;  // children of a parent kind, in submission order.
  TimePoint created{};           // epoch (zero) when not reached.
  TimePoint started{};           // first start; kept across restarts.
  TimePoint finished{};
  std::string spec_json = "{}";    // opaque: what was submitted.
  std::string result_json = "{}";  // opaque: what the runner produced (table for sweeps).
  JobProgress progress;
  int restarts = 0;              // times re-queued after an interrupted run.
  int last_completed_epoch = 0;  // persisted by the runner; resume from here + 1.
  bool cancel_requested = false;
  // Lease bookkeeping (JobStore::Claim): the number of times the job was started — the
  // fencing token every write of a running attempt carries — and the worker that holds the
  // current run ("" when not running).
  int attempt = 0;
  std::string owner;
};

struct JobFilter {
  std::vector<JobState> states;              // empty = all.
  std::optional<JobKind> kind;               // unset = all.
  std::optional<JobId> parent_id;            // only children of this sweep.
  std::optional<TimePoint> finished_before;  // only jobs finished (non-zero) at or before.
  int limit = 100;                           // clamped to 1..1000.
};

// One event of a watch stream: the job as of the event.
struct JobEvent {
  Job job;
  bool terminal = false;  // last event of the stream.
  std::string message;    // e.g. "epoch 3/50 step 10/100 loss 0.4210 val_iou 0.7100".
};

}  // namespace segserve::scheduler
