#include "server/susceptibility/analysis_runner.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/data/dataset.h"
#include "server/data/dataset_index.h"
#include "server/data/shift.h"
#include "server/susceptibility/report_json.h"

namespace segserve::susceptibility {
namespace {

using nlohmann::json;

json SetToJson(const DatasetRef& r) {
  return {{"dataset", r.dataset}, {"split", r.split}, {"shift", r.shift}, {"limit", r.limit}};
}

absl::StatusOr<DatasetRef> ParseSet(const json& j, const std::string& field) {
  if (!j.is_object()) return absl::InvalidArgumentError(field + ": must be an object");
  DatasetRef r;
  if (!j.contains("dataset") || !j["dataset"].is_string() || j["dataset"].get<std::string>().empty()) {
    return absl::InvalidArgumentError(field + ".dataset: required (a data set name)");
  }
  r.dataset = j["dataset"].get<std::string>();
  if (j.contains("split")) {
    if (!j["split"].is_string()) return absl::InvalidArgumentError(field + ".split: not a string");
    r.split = j["split"].get<std::string>();
    if (r.split.empty()) r.split = "test";
  }
  absl::StatusOr<data::Split> split = data::ParseSplit(r.split);
  if (!split.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".split: '", r.split, "' is not train, val or test"));
  }
  if (j.contains("shift")) {
    if (!j["shift"].is_string()) return absl::InvalidArgumentError(field + ".shift: not a string");
    r.shift = j["shift"].get<std::string>();
  }
  RETURN_IF_ERROR(data::ParseShift(r.shift, field + ".shift").status());
  if (j.contains("limit")) {
    if (!j["limit"].is_number_integer() || j["limit"].get<int64_t>() < 0) {
      return absl::InvalidArgumentError(field + ".limit: must be an integer >= 0 (0 = all)");
    }
    r.limit = j["limit"].get<int>();
  }
  return r;
}

}  // namespace

std::string AnalysisSpecToJson(const AnalysisSpec& spec) {
  json models = json::array();
  for (const ModelRef& m : spec.models) models.push_back({{"name", m.name}, {"version", m.version}});
  return json{{"models", models},
              {"source", SetToJson(spec.source)},
              {"target", SetToJson(spec.target)},
              {"bins", spec.bins},
              {"batch_size", spec.batch_size}}
      .dump();
}

absl::StatusOr<AnalysisSpec> ParseAnalysisSpec(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("spec: not a JSON object");
  }
  AnalysisSpec spec;
  if (!j.contains("models") || !j["models"].is_array() || j["models"].empty()) {
    return absl::InvalidArgumentError("models: at least one model is required");
  }
  if (j["models"].size() > kMaxAnalysisModels) {
    return absl::InvalidArgumentError(absl::StrCat("models: at most ", kMaxAnalysisModels,
                                                   ", got ", j["models"].size()));
  }
  for (size_t i = 0; i < j["models"].size(); ++i) {
    const json& m = j["models"][i];
    const std::string field = absl::StrCat("models[", i, "]");
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() ||
        m["name"].get<std::string>().empty()) {
      return absl::InvalidArgumentError(field + ".name: required");
    }
    ModelRef ref{m["name"].get<std::string>(), 0};
    if (m.contains("version")) {
      if (!m["version"].is_number_integer() || m["version"].get<int64_t>() < 0) {
        return absl::InvalidArgumentError(field + ".version: must be an integer >= 0");
      }
      ref.version = m["version"].get<int64_t>();
    }
    spec.models.push_back(std::move(ref));
  }
  ASSIGN_OR_RETURN(spec.source, ParseSet(j.value("source", json()), "source"));
  ASSIGN_OR_RETURN(spec.target, ParseSet(j.value("target", json()), "target"));
  if (j.contains("bins")) {
    if (!j["bins"].is_number_integer()) return absl::InvalidArgumentError("bins: not an integer");
    spec.bins = j["bins"].get<int>();
  }
  RETURN_IF_ERROR(ValidateBins(spec.bins));
  if (j.contains("batch_size")) {
    if (!j["batch_size"].is_number_integer()) {
      return absl::InvalidArgumentError("batch_size: not an integer");
    }
    spec.batch_size = j["batch_size"].get<int>();
  }
  if (spec.batch_size < 1 || spec.batch_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be 1..256, got ", spec.batch_size));
  }
  return spec;
}

absl::StatusOr<ImageSet> AnalysisRunner::ResolveSet(const DatasetRef& ref,
                                                    const std::string& field) const {
  std::string dir;
  if (options_.datasets != nullptr) {
    ASSIGN_OR_RETURN(dir, options_.datasets->LocalDir(ref.dataset, field + ".dataset"));
  } else {
    ASSIGN_OR_RETURN(dir, common::ResolveUnderRoot(options_.data_dir + "/datasets", ref.dataset,
                                                   field + ".dataset"));
    if (!std::filesystem::exists(dir)) {
      return absl::NotFoundError(absl::StrCat(field, ".dataset: no data set '", ref.dataset, "'"));
    }
  }
  ImageSet set;
  set.dataset_dir = dir;
  set.split = ref.split;
  set.shift = ref.shift;
  set.limit = ref.limit;
  return set;
}

absl::Status AnalysisRunner::Run(const scheduler::Job& job, scheduler::JobContext& ctx) {
  ASSIGN_OR_RETURN(AnalysisSpec spec, ParseAnalysisSpec(job.spec_json));
  if (!options_.resolve) return absl::FailedPreconditionError("analysis: no model resolver");
  std::vector<std::shared_ptr<const registry::LoadedModel>> models;
  for (const ModelRef& ref : spec.models) {
    ASSIGN_OR_RETURN(auto m, options_.resolve(ref.name, ref.version));
    models.push_back(std::move(m));
  }
  ASSIGN_OR_RETURN(ImageSet source, ResolveSet(spec.source, "source"));
  ASSIGN_OR_RETURN(ImageSet target, ResolveSet(spec.target, "target"));
  AnalysisOptions options;
  options.bins = spec.bins;
  options.batch_size = spec.batch_size;
  options.loader_workers = options_.loader_workers;
  options.max_images_per_set = options_.max_images_per_set;
  options.forward = options_.forward;

  const auto start = std::chrono::steady_clock::now();
  auto on_progress = [&](int64_t done, int64_t total) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    scheduler::JobProgress p;
    p.step = done;
    p.steps = total;
    p.fraction = total > 0 ? static_cast<double>(done) / total : 0;
    p.images_per_second = secs > 0 ? done / secs : 0;
    p.eta_seconds = done > 0 ? secs * (total - done) / done : 0;
    ctx.ReportProgress(p);
  };
  ASSIGN_OR_RETURN(std::vector<SusceptibilityReport> reports,
                   AnalyzeDatasets(models, source, target, options, on_progress,
                                   [&ctx] { return ctx.cancelled(); }));
  for (const auto& r : reports) LOG(INFO) << "analysis " << job.id << ": " << FormatReport(r);
  ctx.SetResult(ReportsToJson(reports).dump());
  return absl::OkStatus();
}

}  // namespace segserve::susceptibility
