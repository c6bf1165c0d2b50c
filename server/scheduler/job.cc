#include "server/scheduler/job.h"

#include <cstdio>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace segserve::scheduler {

const char* JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kTrain:
      return "TRAIN";
    case JobKind::kSweep:
      return "SWEEP";
    case JobKind::kAnalysis:
      return "ANALYSIS";
    case JobKind::kSynth:
      return "SYNTH";
    case JobKind::kExperiment:
      return "EXPERIMENT";
  }
  return "UNKNOWN";
}

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

absl::StatusOr<JobKind> ParseJobKind(const std::string& name) {
  for (JobKind k : {JobKind::kTrain, JobKind::kSweep, JobKind::kAnalysis, JobKind::kSynth,
                    JobKind::kExperiment}) {
    if (name == JobKindName(k)) return k;
  }
  return absl::InvalidArgumentError("unknown job kind '" + name + "'");
}

absl::StatusOr<JobState> ParseJobState(const std::string& name) {
  for (JobState s : kAllJobStates) {
    if (name == JobStateName(s)) return s;
  }
  return absl::InvalidArgumentError("unknown job state '" + name + "'");
}

bool IsParentKind(JobKind kind) { return kind == JobKind::kSweep || kind == JobKind::kExperiment; }

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::string JobProgress::ToJson() const {
  nlohmann::json j = {{"epoch", epoch},
                      {"epochs", epochs},
                      {"step", step},
                      {"steps", steps},
                      {"loss", loss},
                      {"val_iou", val_iou},
                      {"best_val_iou", best_val_iou},
                      {"images_per_second", images_per_second},
                      {"eta_seconds", eta_seconds},
                      {"fraction", fraction}};
  return j.dump();
}

absl::StatusOr<JobProgress> JobProgress::FromJson(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("progress is not a JSON object: " + json);
  JobProgress p;
  p.epoch = j.value("epoch", 0);
  p.epochs = j.value("epochs", 0);
  p.step = j.value("step", int64_t{0});
  p.steps = j.value("steps", int64_t{0});
  p.loss = j.value("loss", 0.0);
  p.val_iou = j.value("val_iou", 0.0);
  p.best_val_iou = j.value("best_val_iou", 0.0);
  p.images_per_second = j.value("images_per_second", 0.0);
  p.eta_seconds = j.value("eta_seconds", 0.0);
  p.fraction = j.value("fraction", 0.0);
  return p;
}

std::string JobProgress::Summary() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "epoch %d/%d step %lld/%lld loss %.4f val_iou %.4f", epoch,
                epochs, static_cast<long long>(step), static_cast<long long>(steps), loss, val_iou);
  return buf;
}

}  // namespace segserve::scheduler
