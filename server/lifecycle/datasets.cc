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

absl::StatusOr<int64_t> DeleteDataset(data::DatasetIndex& index, const std::string& name,
                                      scheduler::Scheduler& scheduler) {
  RETURN_IF_ERROR(registry::ValidateModelName(name, "name"));
  const std::string dir = index.datasets_dir() + "/" + name;
  std::error_code ec;
  const bool has_folder = std::filesystem::is_directory(dir, ec);
  if (!has_folder) {
    // The index may still list it: its folder went with a delete that died before the
    // index heard of it.
    ASSIGN_OR_RETURN(std::vector<data::DatasetEntry> entries, index.List());
    const bool listed = std::any_of(entries.begin(), entries.end(),
                                    [&](const data::DatasetEntry& e) { return e.name == name; });
    if (!listed) return absl::NotFoundError(absl::StrCat("data set '", name, "' not found"));
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
  int64_t freed = 0;
  if (has_folder) {
    ASSIGN_OR_RETURN(freed, common::RemoveDirectoryDurably(dir));
  }
  // After the folder: a crash in between leaves an entry without a folder, which the next
  // delete removes (never a folder the index lost track of while a job could use it).
  RETURN_IF_ERROR(index.Remove(name));
  LOG(INFO) << "deleted data set " << name << " (" << freed << " bytes)";
  return freed;
}

}  // namespace segserve::lifecycle
