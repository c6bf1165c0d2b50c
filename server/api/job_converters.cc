#include "server/api/job_converters.h"

#include <chrono>

#include "nlohmann/json.hpp"
#include "server/api/susceptibility_service.h"
#include "server/susceptibility/report_json.h"

namespace segserve::api {
namespace {

int64_t UnixSeconds(scheduler::TimePoint t) {
  if (t == scheduler::TimePoint{}) return 0;
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

v1::Encoder EncoderFromName(const std::string& name) {
  if (name == "resnet18") return v1::ENCODER_RESNET18;
  if (name == "resnet34") return v1::ENCODER_RESNET34;
  return v1::ENCODER_UNSPECIFIED;
}

// Fields a training runner reports in its result JSON (and sweeps per row).
void FillTrainResult(const nlohmann::json& result, v1::Job* out) {
  out->set_model_name(result.value("model_name", ""));
  out->set_model_version(result.value("model_version", int64_t{0}));
  auto& metrics = *out->mutable_metrics();
  for (const char* key : {"val_iou", "test_iou", "test_iou_bf16", "epochs_run"}) {
    if (result.contains(key) && result[key].is_number()) metrics[key] = result[key].get<double>();
  }
  if (result.contains("cross_domain_iou") && result["cross_domain_iou"].is_object()) {
    for (const auto& [label, iou] : result["cross_domain_iou"].items()) {
      if (iou.is_number()) metrics["cross_domain_iou/" + label] = iou.get<double>();
    }
  }
  // Stored per target without the model (FinishTraining): the registered one is named here.
  if (auto it = result.find("susceptibility"); it != result.end() && it->is_object()) {
    for (const auto& [target, stored] : it->items()) {
      nlohmann::json report = stored;
      report["model"] = {{"name", out->model_name()}, {"version", out->model_version()}};
      auto parsed = susceptibility::ReportFromJson(report);
      if (parsed.ok()) ReportsToProto({*parsed}, &(*out->mutable_susceptibility())[target]);
    }
  }
}

void FillSweepRows(const nlohmann::json& result, v1::Job* out) {
  if (!result.contains("rows") || !result["rows"].is_array()) return;
  for (const auto& row : result["rows"]) {
    auto* r = out->add_sweep();
    r->set_job_id(row.value("job_id", ""));
    auto state = scheduler::ParseJobState(row.value("state", ""));
    r->set_state(state.ok() ? StateToProto(*state) : v1::JOB_STATE_UNSPECIFIED);
    const nlohmann::json spec = row.value("spec", nlohmann::json::object());
    r->set_encoder(EncoderFromName(spec.value("encoder", "")));
    r->set_prune_level(spec.value("prune_level", 0));
    const nlohmann::json res = row.value("result", nlohmann::json::object());
    r->set_model_name(res.value("model_name", ""));
    r->set_model_version(res.value("model_version", int64_t{0}));
    r->set_val_iou(res.value("val_iou", 0.0));
    r->set_test_iou(res.value("test_iou", 0.0));
    if (res.contains("cross_domain_iou") && res["cross_domain_iou"].is_object()) {
      for (const auto& [label, iou] : res["cross_domain_iou"].items()) {
        if (iou.is_number()) (*r->mutable_cross_domain_iou())[label] = iou.get<double>();
      }
    }
  }
}

}  // namespace

v1::JobState StateToProto(scheduler::JobState state) {
  switch (state) {
    case scheduler::JobState::kQueued:
      return v1::JOB_STATE_QUEUED;
    case scheduler::JobState::kRunning:
      return v1::JOB_STATE_RUNNING;
    case scheduler::JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case scheduler::JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case scheduler::JobState::kCancelled:
      return v1::JOB_STATE_CANCELLED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

absl::StatusOr<scheduler::JobState> StateFromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return scheduler::JobState::kQueued;
    case v1::JOB_STATE_RUNNING:
      return scheduler::JobState::kRunning;
    case v1::JOB_STATE_SUCCEEDED:
      return scheduler::JobState::kSucceeded;
    case v1::JOB_STATE_FAILED:
      return scheduler::JobState::kFailed;
    case v1::JOB_STATE_CANCELLED:
      return scheduler::JobState::kCancelled;
    default:
      return absl::InvalidArgumentError("states: unknown job state");
  }
}

void JobToProto(const scheduler::Job& job, v1::Job* out) {
  out->set_job_id(job.id);
  out->set_kind(static_cast<v1::JobKind>(static_cast<int>(job.kind)));
  out->set_state(StateToProto(job.state));
  out->set_reason(job.reason);
  out->set_created_unix_seconds(UnixSeconds(job.created));
  out->set_started_unix_seconds(UnixSeconds(job.started));
  out->set_finished_unix_seconds(UnixSeconds(job.finished));
  out->set_priority(job.priority);
  out->set_parent_job_id(job.parent_id);
  for (const auto& child : job.child_ids) out->add_child_job_ids(child);
  out->set_restarts(job.restarts);
  out->set_attempt(job.attempt);
  out->set_worker(job.owner);
  out->set_last_completed_epoch(job.last_completed_epoch);
  auto* progress = out->mutable_progress();
  progress->set_epoch(job.progress.epoch);
  progress->set_epochs(job.progress.epochs);
  progress->set_step(job.progress.step);
  progress->set_steps(job.progress.steps);
  progress->set_loss(job.progress.loss);
  progress->set_val_iou(job.progress.val_iou);
  progress->set_best_val_iou(job.progress.best_val_iou);
  progress->set_images_per_second(job.progress.images_per_second);
  progress->set_eta_seconds(job.progress.eta_seconds);
  progress->set_fraction(job.progress.fraction);
  const nlohmann::json result =
      nlohmann::json::parse(job.result_json, nullptr, /*allow_exceptions=*/false);
  if (result.is_discarded() || !result.is_object()) return;
  if (job.kind == scheduler::JobKind::kSweep) {
    FillSweepRows(result, out);
  } else if (job.kind == scheduler::JobKind::kExperiment) {
    FillSweepRows(result, out);
    if (auto it = result.find("report"); it != result.end() && it->is_object()) {
      out->set_experiment_report_json(it->dump());
    }
  } else if (job.kind == scheduler::JobKind::kAnalysis) {
    auto reports = susceptibility::ReportsFromJson(result);
    if (reports.ok()) ReportsToProto(*reports, out->mutable_analysis());
  } else {
    FillTrainResult(result, out);
  }
}

void JobEventToProto(const scheduler::JobEvent& event, v1::JobEvent* out) {
  JobToProto(event.job, out->mutable_job());
  out->set_terminal(event.terminal);
  out->set_message(event.message);
}

}  // namespace segserve::api
