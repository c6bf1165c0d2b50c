#include "server/app/bootstrap.h"

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/experiment/experiment_spec.h"
#include "server/training/train_spec.h"

namespace segserve::app {
namespace fs = std::filesystem;
namespace {

bool IsEmptyDir(const std::string& path) {
  std::error_code ec;
  return !fs::exists(path, ec) || fs::is_empty(path, ec);
}

const char* AliasOf(int level) { return level == 0 ? "baseline" : "l1-pruned"; }

}  // namespace

Bootstrap::Bootstrap(BootstrapOptions options, scheduler::Scheduler& scheduler,
                     registry::ModelStore& store)
    : options_(std::move(options)), scheduler_(scheduler), store_(store) {}

Bootstrap::~Bootstrap() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void Bootstrap::StartIfNeeded() {
  const std::string marker = options_.data_dir + "/bootstrap.json";
  std::string experiment_id;
  auto state = common::ReadFile(marker);
  if (state.ok()) {
    const nlohmann::json j = nlohmann::json::parse(*state, nullptr, false);
    const std::string s = j.is_object() ? j.value("state", "") : "";
    if (s == "done") return;
    if (s == "submitted") {
      // Before experiments the quick start submitted a sweep whose aliases were set at once.
      experiment_id = j.value("experiment_job_id", "");
      if (experiment_id.empty()) return;
    }
  } else {
    auto jobs = scheduler_.List(scheduler::JobFilter{});
    const bool fresh = IsEmptyDir(options_.data_dir + "/datasets") &&
                       IsEmptyDir(options_.data_dir + "/models") && jobs.ok() && jobs->empty();
    if (!fresh) return;
  }
  thread_ = std::thread([this, experiment_id] { Run(experiment_id); });
}

bool Bootstrap::WaitTerminal(const std::string& job_id, scheduler::Job* job) {
  auto watch = scheduler_.Watch(job_id);
  if (!watch.ok()) {
    LOG(WARNING) << "quick-start: cannot follow job " << job_id << ": " << watch.status();
    return false;
  }
  while (!stopping_) {
    auto event = (*watch)->Next(std::chrono::milliseconds(200));
    if (!event) {
      if ((*watch)->done()) return false;  // shutdown: resume at next start
      continue;
    }
    if (event->terminal) {
      *job = event->job;
      return true;
    }
  }
  return false;
}

std::string Bootstrap::SubmitExperiment() {
  experiment::ExperimentSpec spec;
  spec.preset = "quick";
  spec.encoders = {options_.encoder};
  spec.seeds = options_.seeds;
  spec.train.dataset = options_.dataset;
  spec.train.epochs = options_.epochs;
  spec.train.batch_size = 8;
  spec.train.max_steps_per_epoch = options_.max_steps_per_epoch;
  spec.train.bf16_check = true;  // lets --precision=auto serve the quick-start models in bf16
  if (absl::Status s = experiment::ApplyPreset(spec, /*epochs_set=*/true); !s.ok()) {
    LOG(WARNING) << "quick-start: " << s;
    return "";
  }
  std::vector<std::string> children;
  for (const training::TrainSpec& child : experiment::ExpandExperiment(spec)) {
    children.push_back(training::TrainSpecToJsonString(child));
    // Seed 1's models first, so that the aliases resolve as soon as they are trained.
    if (child.seed == spec.seeds.front() && child.prune_level <= 1) {
      (void)store_.SetAlias(AliasOf(child.prune_level),
                            registry::AliasTarget{training::ModelNameOf(child), 0});
    }
  }
  auto job = scheduler_.SubmitParent(scheduler::JobKind::kExperiment,
                                     experiment::ExperimentSpecToJson(spec).dump(), children);
  if (!job.ok()) {
    LOG(WARNING) << "quick-start: cannot submit the experiment: " << job.status();
    return "";
  }
  return job->id;
}

void Bootstrap::PointAliasesAtBestSeeds(const scheduler::Job& experiment) {
  std::map<int, std::pair<double, registry::AliasTarget>> best;  // level -> (val IoU, model)
  for (const scheduler::JobId& id : experiment.child_ids) {
    auto child = scheduler_.Get(id);
    if (!child.ok() || child->state != scheduler::JobState::kSucceeded) continue;
    auto spec = training::TrainSpecFromJsonString(child->spec_json);
    const nlohmann::json result = nlohmann::json::parse(child->result_json, nullptr, false);
    if (!spec.ok() || !result.is_object() || spec->prune_level > 1) continue;
    const double val_iou = result.value("val_iou", -1.0);
    auto it = best.find(spec->prune_level);
    if (it == best.end() || val_iou > it->second.first) {
      best[spec->prune_level] = {
          val_iou, {result.value("model_name", ""), result.value("model_version", int64_t{0})}};
    }
  }
  for (const auto& [level, entry] : best) {
    const registry::AliasTarget& target = entry.second;
    if (absl::Status s = store_.SetAlias(AliasOf(level), target); !s.ok()) {
      LOG(WARNING) << "quick-start: cannot point " << AliasOf(level) << " at " << target.name
                   << ": " << s;
      continue;
    }
    LOG(INFO) << "quick-start: " << AliasOf(level) << " -> " << target.name << ":" << target.version
              << " (best of the seeds, val IoU " << entry.first << ")";
  }
}

void Bootstrap::Run(std::string experiment_id) {
  const std::string marker = options_.data_dir + "/bootstrap.json";
  if (experiment_id.empty()) {
    (void)common::WriteFileAtomically(marker, R"({"state": "dataset"})");
    std::error_code ec;
    if (!fs::exists(options_.data_dir + "/datasets/" + options_.dataset, ec)) {
      LOG(INFO) << "quick-start: generating data set '" << options_.dataset << "' ("
                << options_.images << " images, " << options_.size << " px)";
      nlohmann::json spec = {
          {"name", options_.dataset}, {"n", options_.images}, {"size", options_.size}, {"seed", 1}};
      auto job = scheduler_.Submit(scheduler::JobKind::kSynth, spec.dump(), /*priority=*/10);
      if (!job.ok()) {
        LOG(WARNING) << "quick-start: cannot submit the data-set job: " << job.status();
        return;
      }
      scheduler::Job done;
      if (!WaitTerminal(job->id, &done)) return;
      if (done.state != scheduler::JobState::kSucceeded) {
        LOG(WARNING) << "quick-start: data-set job ended " << JobStateName(done.state) << ": "
                     << done.reason;
        return;
      }
    }
    if (stopping_) return;
    experiment_id = SubmitExperiment();
    if (experiment_id.empty()) return;
    (void)common::WriteFileAtomically(
        marker,
        nlohmann::json{{"state", "submitted"}, {"experiment_job_id", experiment_id}}.dump());
    LOG(INFO) << "quick-start: experiment " << experiment_id
              << " submitted (resnet18 L0 and L1, seeds 1 and 2, graded shifts); follow it with "
                 "`segctl jobs watch "
              << experiment_id << "`, then `segctl experiment report " << experiment_id << "`";
  }
  scheduler::Job ended;
  if (!WaitTerminal(experiment_id, &ended)) return;
  auto fresh = scheduler_.Get(experiment_id);  // with its children's ids
  const scheduler::Job& experiment = fresh.ok() ? *fresh : ended;
  if (experiment.state == scheduler::JobState::kCancelled) {
    LOG(WARNING) << "quick-start: experiment " << experiment_id << " was cancelled";
  } else {
    PointAliasesAtBestSeeds(experiment);
  }
  (void)common::WriteFileAtomically(
      marker, nlohmann::json{{"state", "done"}, {"experiment_job_id", experiment_id}}.dump());
}

}  // namespace segserve::app
