#include "server/lifecycle/datasets.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/dir_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/registry/model_store.h"

namespace segserve::lifecycle {
namespace {

void CollectDatasets(const nlohmann::json& json, std::vector<std::string>& out) {
  if (json.is_object()) {
    for (const auto& [key, value] : json.items()) {
      if (key == "dataset" && value.is_string()) {
        out.push_back(value.get<std::string>());
      } else {
        CollectDatasets(value, out);
      }
    }
  } else if (json.is_array()) {
    for (const auto& value : json) CollectDatasets(value, out);
  }
}

}  // namespace

std::vector<std::string> DatasetsUsedBy(const scheduler::Job& job) {
  std::vector<std::string> names;
  const nlohmann::json spec = nlohmann::json::parse(job.spec_json, nullptr, false);
  if (spec.is_discarded()) return names;
  CollectDatasets(spec, names);
  if (job.kind == scheduler::JobKind::kSynth && spec.is_object() && spec.contains("name") &&
      spec["name"].is_string()) {
    names.push_back(spec["name"].get<std::string>());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<int64_t> DeleteDataset(const std::string& data_dir, const std::string& name,
                                      scheduler::Scheduler& scheduler) {
  RETURN_IF_ERROR(registry::ValidateModelName(name, "name"));
  const std::string dir = data_dir + "/datasets/" + name;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
  }
  absl::StatusOr<std::vector<scheduler::Job>> active = scheduler.ActiveJobs();
  if (!active.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot tell whether a job uses data set '",
                                                      name, "': ", active.status().message()));
  }
  for (const scheduler::Job& job : *active) {
    for (const std::string& used : DatasetsUsedBy(job)) {
      if (used != name) continue;
      return absl::FailedPreconditionError(
          absl::StrCat("data set '", name, "' is in use by ", scheduler::JobStateName(job.state),
                       " ", scheduler::JobKindName(job.kind), " job ", job.id,
                       "; cancel it or wait until it finishes"));
    }
  }
  ASSIGN_OR_RETURN(int64_t freed, common::RemoveDirectoryDurably(dir));
  LOG(INFO) << "deleted data set " << name << " (" << freed << " bytes)";
  return freed;
}

}  // namespace segserve::lifecycle
