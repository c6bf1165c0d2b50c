// File: server/susceptibility/analysis_runner.h — the ANALYSIS job kind: its spec (models and
// two server-side image sets), validation, and the scheduler::Runner that runs
// AnalyzeDatasets with progress and cancellation and stores the reports as the job result
// (ReportsToJson). Torch-free header.
//
// Spec JSON: {"models": [{"name": "m", "version": 0}], "bins": 0, "batch_size": 8,
//             "source": {"dataset": "synth", "split": "test", "shift": "", "limit": 0},
//             "target": {"dataset": "synth", "split": "test", "shift": "brightness:3"}}
// version 0 = the newest loaded; "dataset" is a name under <data_dir>/datasets.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/registry/registry.h"
#include "server/scheduler/runner.h"
#include "server/susceptibility/analyze_datasets.h"

namespace segserve::data {
class DatasetIndex;
}  // namespace segserve::data

namespace segserve::susceptibility {

struct ModelRef {
  std::string name;
  int64_t version = 0;
};

struct DatasetRef {
  std::string dataset;
  std::string split = "test";
  std::string shift;
  int limit = 0;
};

struct AnalysisSpec {
  std::vector<ModelRef> models;
  DatasetRef source;
  DatasetRef target;
  int bins = 0;
  int batch_size = 8;
};

inline constexpr int kMaxAnalysisModels = 16;

std::string AnalysisSpecToJson(const AnalysisSpec& spec);
// InvalidArgument naming the field (models, models[i].name, source.dataset, source.split,
// source.shift, source.limit, bins, batch_size) for anything malformed.
absl::StatusOr<AnalysisSpec> ParseAnalysisSpec(const std::string& json);

using ModelResolver = std::function<absl::StatusOr<std::shared_ptr<const registry::LoadedModel>>(
    const std::string& name, int64_t version)>;

struct AnalysisRunnerOptions {
  std::string data_dir;    // data sets live in <data_dir>/datasets/<name>
  // The server's data-set index: sets are opened through its LocalDir (which fetches those
  // whose files are in the database). Null: the folders under data_dir. Not owned.
  data::DatasetIndex* datasets = nullptr;
  ModelResolver resolve;   // production: ModelRegistry::Resolve
  int loader_workers = 2;
  int64_t max_images_per_set = 0;  // 0 = no cap
  TapMeansFn forward;              // AnalysisOptions::forward (production: the serving core)
};

class AnalysisRunner : public scheduler::Runner {
 public:
  explicit AnalysisRunner(AnalysisRunnerOptions options) : options_(std::move(options)) {}
  // Parses the spec, resolves the models (their errors as Resolve returns them) and the data
  // sets (NotFound), runs the analysis reporting progress (step = images done, steps = total,
  // fraction, images_per_second, eta_seconds) and sets the result to ReportsToJson. Cancelled
  // when ctx.cancelled(). An analysis has no checkpoints: a re-run starts over.
  absl::Status Run(const scheduler::Job& job, scheduler::JobContext& ctx) override;

 private:
  absl::StatusOr<ImageSet> ResolveSet(const DatasetRef& ref, const std::string& field) const;
  const AnalysisRunnerOptions options_;
};

}  // namespace segserve::susceptibility
