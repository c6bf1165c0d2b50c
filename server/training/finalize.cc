// File: server/training/finalize.cc — test and cross-domain IoU, reference statistics and
// registration of the best checkpoint.
#include "server/training/finalize.h"

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/model/checkpoint.h"
#include "server/registry/add_once.h"
#include "server/training/trainer_internal.h"

namespace segserve::training {
namespace {

using nlohmann::json;

// Per-class IoUs as {"<metric>/<class>": iou} for defined classes.
void AddClassMetrics(const RunContext& run, const ConfusionMatrix& cm, const std::string& prefix,
                     json& metrics) {
  for (int c = 0; c < cm.classes(); ++c) {
    const double iou = cm.ClassIoU(c);
    if (iou >= 0) metrics[absl::StrCat(prefix, "/", ClassName(run, c))] = iou;
  }
}

}  // namespace

std::string ClassName(const RunContext& run, int c) {
  for (const auto& info : run.dataset->classes) {
    if (info.id == c && !info.name.empty()) return info.name;
  }
  return absl::StrCat("class", c);
}

absl::StatusOr<std::unique_ptr<data::Loader>> MakeEvalLoader(
    const RunContext& run, std::shared_ptr<const data::Dataset> dataset, data::Split split,
    const data::Shift& shift) {
  data::LoaderOptions lo;
  lo.split = split;
  lo.batch_size = run.spec.batch_size;
  lo.shuffle = false;
  lo.seed = run.spec.seed;
  lo.augment.random_crop = false;
  lo.augment.flips = false;
  lo.augment.rotate90 = false;
  lo.augment.color = false;
  lo.shift = shift;
  lo.normalization = {run.config.mean, run.config.std};
  lo.workers = run.loader_workers;
  return data::Loader::Create(std::move(dataset), lo);
}

absl::StatusOr<std::string> ReadRegistration(const RunContext& run) {
  ASSIGN_OR_RETURN(std::string text, common::ReadFile(run.run_dir + "/registered.json"));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("result")) {
    return absl::DataLossError("runs/" + run.job_id + "/registered.json is malformed");
  }
  return j["result"].dump();
}

absl::StatusOr<std::string> FinishTraining(
    const RunContext& run, const FinishInfo& info,
    const std::function<void(const registry::StoredVersion&)>& on_registered,
    const std::function<bool()>& cancelled, const std::function<absl::Status()>& check_lease) {
  ASSIGN_OR_RETURN(model::LoadedCheckpoint best, model::LoadCheckpoint(run.run_dir + "/best.ckpt"));
  model::Unet net = best.model;
  net->to(run.device);
  if (run.channels_last) internal::ToChannelsLast(net);
  const double val_iou = best.info.metadata.value("best_val_iou", 0.0);

  // One served snapshot for the test split and every cross-domain set (an experiment asks
  // for 15 shifted sets): copying and folding the model once, not per set.
  std::shared_ptr<const registry::LoadedModel> snapshot;
  if (run.eval_scheduler != nullptr) {
    ASSIGN_OR_RETURN(snapshot, internal::EvaluationSnapshot(run, net, /*bfloat16=*/false));
  }
  auto evaluate = [&](data::Loader& loader) -> absl::StatusOr<ConfusionMatrix> {
    return snapshot ? internal::EvaluateSnapshot(run, snapshot, loader, cancelled)
                    : internal::Evaluate(run, net, loader, cancelled);
  };

  json metrics = {{"val_iou", val_iou}};
  json result = {{"val_iou", val_iou}, {"cross_domain_iou", json::object()}};
  // Where the time after the last epoch goes (docs/experiments.md, bench/experiment): seconds
  // and images per phase; a resumed finish counts only its own run.
  json timing = {{"test_seconds", 0.0},           {"test_images", 0},
                 {"cross_domain_seconds", 0.0},   {"cross_domain_images", 0},
                 {"susceptibility_seconds", 0.0}, {"reference_seconds", 0.0}};
  // Adds the seconds since `start` to the phase's slot.
  auto add_since = [](json& slot, std::chrono::steady_clock::time_point start) {
    slot = slot.get<double>() +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // In-domain test split.
  ASSIGN_OR_RETURN(data::Split test_split, data::ParseSplit(run.spec.test_split));
  if (!run.dataset->split(test_split).empty()) {
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto loader, MakeEvalLoader(run, run.dataset, test_split, {}));
    ASSIGN_OR_RETURN(ConfusionMatrix cm, evaluate(*loader));
    add_since(timing["test_seconds"], start);
    timing["test_images"] = run.dataset->split(test_split).size();
    metrics["test_iou"] = cm.MeanForegroundIoU();
    result["test_iou"] = cm.MeanForegroundIoU();
    AddClassMetrics(run, cm, "test_iou", metrics);
    json per_class = json::object();
    for (int c = 1; c < cm.classes(); ++c) {
      if (const double iou = cm.ClassIoU(c); iou >= 0) per_class[ClassName(run, c)] = iou;
    }
    result["test_class_iou"] = per_class;
    if (run.spec.bf16_check) {
      // The same split served in bf16: what --precision=auto decides on.
      ASSIGN_OR_RETURN(ConfusionMatrix bf16,
                       internal::Evaluate(run, net, *loader, cancelled, /*bfloat16=*/true));
      metrics["test_iou_bf16"] = bf16.MeanForegroundIoU();
      result["test_iou_bf16"] = bf16.MeanForegroundIoU();
      LOG(INFO) << "training " << run.job_id << ": test IoU fp32 " << cm.MeanForegroundIoU()
                << ", served in bf16 " << bf16.MeanForegroundIoU();
    }
  } else {
    LOG(WARNING) << "training " << run.job_id << ": split " << run.spec.test_split
                 << " is empty; no test IoU";
  }

  // Cross-domain sets.
  for (size_t i = 0; i < run.spec.cross_domain.size(); ++i) {
    const CrossDomainSpec& set = run.spec.cross_domain[i];
    const std::string field = absl::StrCat("spec.cross_domain[", i, "]");
    std::shared_ptr<const data::Dataset> ds = run.dataset;
    if (!set.dataset.empty() && set.dataset != run.spec.dataset) {
      ASSIGN_OR_RETURN(std::string dir, ResolveDatasetDir(run.data_dir, set.dataset,
                                                          field + ".dataset", run.datasets));
      data::OpenOptions open;
      open.verify_contents = false;
      ASSIGN_OR_RETURN(data::Dataset other, data::OpenDataset(dir, open));
      if (other.channels != run.config.in_channels) {
        return absl::FailedPreconditionError(
            absl::StrCat(field, ".dataset: '", set.dataset, "' has ", other.channels,
                         " channels, the model ", run.config.in_channels));
      }
      ds = std::make_shared<const data::Dataset>(std::move(other));
    }
    ASSIGN_OR_RETURN(data::Split split, data::ParseSplit(set.split.empty() ? "test" : set.split));
    ASSIGN_OR_RETURN(data::Shift shift, data::ParseShift(set.shift, field + ".shift"));
    const std::string label = CrossDomainLabel(run.spec, set);
    if (ds->split(split).empty()) {
      LOG(WARNING) << "training " << run.job_id << ": cross-domain set " << label
                   << " has no images; skipped";
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto loader, MakeEvalLoader(run, ds, split, shift));
    ASSIGN_OR_RETURN(ConfusionMatrix cm, evaluate(*loader));
    add_since(timing["cross_domain_seconds"], start);
    timing["cross_domain_images"] = timing["cross_domain_images"].get<int64_t>() +
                                    static_cast<int64_t>(ds->split(split).size());
    metrics["cross_domain_iou/" + label] = cm.MeanForegroundIoU();
    result["cross_domain_iou"][label] = cm.MeanForegroundIoU();
  }

  // Per-layer susceptibility of the same snapshot (a copy of the weights, folded as served).
  if (!run.spec.susceptibility.targets.empty()) {
    if (!snapshot) {
      ASSIGN_OR_RETURN(snapshot, internal::EvaluationSnapshot(run, net, /*bfloat16=*/false));
    }
    const auto start = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(result["susceptibility"], ComputeSusceptibility(run, snapshot, cancelled));
    add_since(timing["susceptibility_seconds"], start);
  }

  // Reference statistics over the training split, as the model sees it when serving.
  const auto reference_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto train_loader, MakeEvalLoader(run, run.dataset, data::Split::kTrain, {}));
  ASSIGN_OR_RETURN(json reference,
                   internal::ComputeReferenceStats(run, net, *train_loader, cancelled));
  add_since(timing["reference_seconds"], reference_start);
  result["finish_timing"] = timing;
  if (cancelled && cancelled()) return absl::CancelledError("training cancelled");

  json class_names = json::array();
  for (int c = 0; c < run.config.classes; ++c) class_names.push_back(ClassName(run, c));
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  json metadata = {{"metrics", metrics},
                   {"source_job_id", run.job_id},
                   {"train_spec", TrainSpecToJson(run.spec)},
                   {"class_names", class_names},
                   {"reference_stats", std::move(reference)},
                   {"created_unix_seconds", now},
                   {"epochs_run", info.epochs_run},
                   {"best_epoch", info.best_epoch},
                   {"history", info.history}};
  net->to(torch::kCPU);
  ASSIGN_OR_RETURN(std::string bytes, model::SerializeCheckpoint(net, metadata));
  std::unique_ptr<registry::ModelStore> own_store;
  registry::ModelStore* store = run.model_store;
  if (store == nullptr) {
    ASSIGN_OR_RETURN(own_store, registry::ModelStore::Open(run.data_dir));
    store = own_store.get();
  }
  const std::string name = ModelNameOf(run.spec);
  // A crash between AddVersion and registered.json must not register the model twice: a
  // version whose metadata names this job is the one registered before the crash (the
  // earlier run may have been another replica's); a run that lost its lease adds nothing.
  ASSIGN_OR_RETURN(registry::AddedOnce added,
                   registry::AddVersionOnce(*store, name, bytes, "source_job_id", run.job_id,
                                            check_lease));
  registry::StoredVersion stored = std::move(added.version);
  for (const std::string& alias : run.spec.set_aliases) {
    RETURN_IF_ERROR(store->SetAlias(alias, {stored.name, stored.version}));
  }
  LOG(INFO) << "training " << run.job_id << ": registered " << stored.name << " v" << stored.version
            << " val_iou " << val_iou;

  result["model_name"] = stored.name;
  result["model_version"] = stored.version;
  result["epochs_run"] = info.epochs_run;
  result["best_epoch"] = info.best_epoch;
  result["stopped_early"] = info.stopped_early;
  RETURN_IF_ERROR(common::WriteFileAtomically(
      run.run_dir + "/registered.json",
      json{{"name", stored.name}, {"version", stored.version}, {"result", result}}.dump()));
  if (on_registered) on_registered(stored);
  return result.dump();
}

}  // namespace segserve::training
