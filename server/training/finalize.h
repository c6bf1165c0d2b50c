// File: server/training/finalize.h — what happens after the last epoch: test IoU in-domain and
// cross-domain, reference activation statistics, registration in the model store. Internal to
// server/training (torch types).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/data/dataset.h"
#include "server/data/loader.h"
#include "server/inference/batch_scheduler.h"
#include "server/model/model_config.h"
#include "server/model/unet.h"
#include "server/registry/model_store.h"
#include "server/registry/registry.h"
#include "server/training/train_spec.h"

namespace segserve::training {

// Everything a run shares between set-up, the epoch loop and the final phase.
struct RunContext {
  TrainSpec spec;
  std::string job_id;
  std::string data_dir;
  // Where data sets are found (TrainingOptions::datasets); null: folders under data_dir.
  data::DatasetIndex* datasets = nullptr;
  std::string run_dir;  // <data_dir>/runs/<job_id>
  std::shared_ptr<const data::Dataset> dataset;
  model::UnetConfig config;
  model::Unet model{nullptr};
  torch::Device device{torch::kCPU};
  bool channels_last = true;
  int loader_workers = 2;
  // Where evaluation forward passes run (TrainingOptions::eval_scheduler); null: in place.
  inference::BatchScheduler* eval_scheduler = nullptr;
  // Where the model is registered (TrainingOptions::model_store); null: files in data_dir.
  registry::ModelStore* model_store = nullptr;
};

struct FinishInfo {
  int epochs_run = 0;
  int best_epoch = 0;
  bool stopped_early = false;
  nlohmann::json history;
};

// Name of class id `c` in the training data set ("class<c>" when it has none).
std::string ClassName(const RunContext& run, int c);

// A loader over `split` of `dataset` without augmentation, normalised as the model expects,
// with `shift` applied to every image.
absl::StatusOr<std::unique_ptr<data::Loader>> MakeEvalLoader(
    const RunContext& run, std::shared_ptr<const data::Dataset> dataset, data::Split split,
    const data::Shift& shift);

// The result JSON stored in runs/<job>/registered.json; NotFound when the run has not been
// registered yet.
absl::StatusOr<std::string> ReadRegistration(const RunContext& run);

// Per-layer susceptibility of `snapshot` (an EvaluationSnapshot of the trained model) for every
// target of run.spec.susceptibility: the test split with the target's shift against the
// unshifted test split, the first `images` images of each, computed as the Analyze RPC does
// (susceptibility::AnalyzeDatasets; through run.eval_scheduler when the run has one).
// {target: ReportToJson without "model" and per-channel values}; {} without targets or with
// an empty test split.
absl::StatusOr<nlohmann::json> ComputeSusceptibility(
    const RunContext& run, const std::shared_ptr<const registry::LoadedModel>& snapshot,
    const std::function<bool()>& cancelled);

// Loads best.ckpt, evaluates it on the test split and every cross-domain set, computes the
// reference statistics over the training split, registers it (AddVersion, aliases; a
// version whose source_job_id is this job, left by a crash, is reused instead; `check_lease`
// is asked right before AddVersion, and when two runs of the job registered at once — a
// paused worker and its successor — the lower version is kept and the other removed), calls
// `on_registered`, records runs/<job>/registered.json and returns the job's result JSON:
// {model_name, model_version, val_iou, test_iou, test_class_iou: {foreground class: iou},
//  test_iou_bf16 (TrainSpec::bf16_check),
//  cross_domain_iou: {label: iou}, susceptibility: {target: report} (ComputeSusceptibility;
//  only when the spec names targets), finish_timing: {test_seconds, test_images,
//  cross_domain_seconds, cross_domain_images, susceptibility_seconds, reference_seconds},
//  epochs_run, best_epoch, stopped_early}.
absl::StatusOr<std::string> FinishTraining(
    const RunContext& run, const FinishInfo& info,
    const std::function<void(const registry::StoredVersion&)>& on_registered,
    const std::function<bool()>& cancelled, const std::function<absl::Status()>& check_lease);

}  // namespace segserve::training
