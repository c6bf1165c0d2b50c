#include "server/app/bootstrap.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/training/train_spec.h"

namespace segserve::app {
namespace fs = std::filesystem;
namespace {

bool IsEmptyDir(const std::string& path) {
  std::error_code ec;
  return !fs::exists(path, ec) || fs::is_empty(path, ec);
}

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
  auto state = common::ReadFile(marker);
  if (state.ok()) {
    if (state->find("submitted") != std::string::npos) return;
  } else {
    auto jobs = scheduler_.List(scheduler::JobFilter{});
    const bool fresh = IsEmptyDir(options_.data_dir + "/datasets") &&
                       IsEmptyDir(options_.data_dir + "/models") && jobs.ok() && jobs->empty();
    if (!fresh) return;
  }
  thread_ = std::thread([this] { Run(); });
}

void Bootstrap::Run() {
  const std::string marker = options_.data_dir + "/bootstrap.json";
  (void)common::WriteFileAtomically(marker, R"({"state": "dataset"})");
  std::error_code ec;
  if (!fs::exists(options_.data_dir + "/datasets/" + options_.dataset, ec)) {
    LOG(INFO) << "quick-start: generating data set '" << options_.dataset << "' ("
              << options_.images << " images, " << options_.size << " px)";
    nlohmann::json spec = {{"name", options_.dataset},
                           {"n", options_.images},
                           {"size", options_.size},
                           {"seed", 1}};
    auto job = scheduler_.Submit(scheduler::JobKind::kSynth, spec.dump(), /*priority=*/10);
    if (!job.ok()) {
      LOG(WARNING) << "quick-start: cannot submit the data-set job: " << job.status();
      return;
    }
    auto watch = scheduler_.Watch(job->id);
    if (!watch.ok()) return;
    while (!stopping_) {
      auto event = (*watch)->Next(std::chrono::milliseconds(200));
      if (!event) {
        if ((*watch)->done()) return;  // shutdown: resume at next start
        continue;
      }
      if (!event->terminal) continue;
      if (event->job.state != scheduler::JobState::kSucceeded) {
        LOG(WARNING) << "quick-start: data-set job ended " << JobStateName(event->job.state)
                     << ": " << event->job.reason;
        return;
      }
      break;
    }
    if (stopping_) return;
  }
  std::vector<std::string> children;
  training::TrainSpec spec;
  spec.dataset = options_.dataset;
  spec.encoder = options_.encoder;
  spec.epochs = options_.epochs;
  spec.batch_size = 8;
  spec.cross_domain.push_back({"brightness:4", "", "test", "brightness:4"});
  for (int level : {0, 1}) {
    spec.prune_level = level;
    children.push_back(training::TrainSpecToJsonString(spec));
    const std::string alias = level == 0 ? "baseline" : "l1-pruned";
    (void)store_.SetAlias(alias, registry::AliasTarget{training::ModelNameOf(spec), 0});
  }
  nlohmann::json parent = training::TrainSpecToJson(spec);
  parent["encoders"] = {options_.encoder};
  parent["prune_levels"] = {0, 1};
  auto sweep = scheduler_.SubmitSweep(parent.dump(), children);
  if (!sweep.ok()) {
    LOG(WARNING) << "quick-start: cannot submit the training sweep: " << sweep.status();
    return;
  }
  (void)common::WriteFileAtomically(
      marker, nlohmann::json{{"state", "submitted"}, {"sweep_job_id", sweep->id}}.dump());
  LOG(INFO) << "quick-start: training sweep " << sweep->id
            << " submitted (L0 -> alias baseline, L1 -> alias l1-pruned); follow it with "
               "`segctl jobs watch "
            << sweep->id << "`";
}

}  // namespace segserve::app
