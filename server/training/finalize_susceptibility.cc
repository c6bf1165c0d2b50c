// File: server/training/finalize_susceptibility.cc — per-layer susceptibility of a trained
// model for the targets its spec names, computed by the Analyze RPC's own driver
// (susceptibility::AnalyzeDatasets) on the model's evaluation snapshot.
#include <torch/torch.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/inference/background_forward.h"
#include "server/susceptibility/analyze_datasets.h"
#include "server/susceptibility/report_json.h"
#include "server/training/finalize.h"

namespace segserve::training {

absl::StatusOr<nlohmann::json> ComputeSusceptibility(
    const RunContext& run, const std::shared_ptr<const registry::LoadedModel>& snapshot,
    const std::function<bool()>& cancelled) {
  nlohmann::json out = nlohmann::json::object();
  const SusceptibilitySpec& spec = run.spec.susceptibility;
  if (spec.targets.empty()) return out;
  ASSIGN_OR_RETURN(data::Split split, data::ParseSplit(run.spec.test_split));
  if (run.dataset->split(split).empty()) {
    LOG(WARNING) << "training " << run.job_id << ": split " << run.spec.test_split
                 << " is empty; no susceptibility";
    return out;
  }
  ASSIGN_OR_RETURN(std::string dir,
                   ResolveDatasetDir(run.data_dir, run.spec.dataset, "spec.dataset", run.datasets));
  susceptibility::AnalysisOptions options;
  options.batch_size = run.spec.batch_size;
  // One decode thread per set: a forward pass takes far longer than decoding its image, and
  // each target opens two sets.
  options.loader_workers = 1;
  if (run.eval_scheduler != nullptr) {
    // Background work on the executor that owns the device, as the evaluation passes.
    inference::BatchScheduler* scheduler = run.eval_scheduler;
    options.forward = [scheduler](const std::shared_ptr<const registry::LoadedModel>& model,
                                  int n, int c, int h, int w, std::vector<float> input) {
      inference::BackgroundBatch work;
      work.model = model;
      work.n = n;
      work.c = c;
      work.h = h;
      work.w = w;
      work.input = std::move(input);
      work.admit = false;  // the job scheduler bounds how many jobs evaluate at once
      return inference::ForwardForTapMeans(*scheduler, std::move(work));
    };
  }
  susceptibility::ImageSet source;
  source.dataset_dir = dir;
  source.split = run.spec.test_split;
  source.limit = spec.images;
  // One pass over the unshifted source for every target (AnalyzeTargets).
  std::vector<susceptibility::ImageSet> targets;
  for (const std::string& target_shift : spec.targets) {
    susceptibility::ImageSet target = source;
    target.shift = target_shift;
    targets.push_back(std::move(target));
  }
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(
      std::vector<std::vector<susceptibility::SusceptibilityReport>> reports,
      susceptibility::AnalyzeTargets({snapshot}, source, targets, options, nullptr, cancelled));
  for (size_t t = 0; t < spec.targets.size(); ++t) {
    nlohmann::json report = susceptibility::ReportToJson(reports[t].at(0), /*per_channel=*/false);
    report.erase("model");  // the snapshot's name; the result names the registered model
    out[spec.targets[t]] = std::move(report);
  }
  LOG(INFO) << "training " << run.job_id << ": susceptibility to " << spec.targets.size()
            << " target(s) over " << reports[0][0].source_images << " source images in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s";
  return out;
}

}  // namespace segserve::training
