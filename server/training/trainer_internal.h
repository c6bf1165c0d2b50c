// File: server/training/trainer_internal.h — torch-side pieces of the training runner, shared
// by its .cc files and tests: batch -> tensor conversion, the loss, IoU evaluation and the
// reference activation statistics. Not part of the public (torch-free) API.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/data/loader.h"
#include "server/model/unet.h"
#include "server/training/finalize.h"
#include "server/training/metrics_util.h"

namespace segserve::registry {
struct LoadedModel;
}

namespace segserve::training::internal {

// torch's global generator is process-wide: seeding and drawing initial weights (a new job's
// model, an evaluation snapshot) must not interleave with another job doing the same.
std::mutex& InitMutex();

// N x C x H x W float images on `device` (channels-last when asked) and N x H x W int64 masks.
torch::Tensor BatchImages(const data::Batch& batch, const torch::Device& device,
                          bool channels_last);
torch::Tensor BatchMasks(const data::Batch& batch, const torch::Device& device);

// Runs `model` (switched to eval mode, no grad) over every batch of `loader`'s epoch 0 and
// accumulates a confusion matrix. CancelledError when `cancelled` turns true between batches.
absl::StatusOr<ConfusionMatrix> Evaluate(model::Unet& model, data::Loader& loader,
                                         const torch::Device& device, bool channels_last,
                                         const std::function<bool()>& cancelled);

// Evaluate for a run: through the serving core's batching scheduler when the run has one
// (RunContext::eval_scheduler: a snapshot of `model` prepared as served runs as background
// work items; logits come back without a copy and are reduced to argmax here), else in place.
// `bfloat16`: the snapshot is served in bf16 (ServeOptions::bfloat16), as --precision=bf16
// would serve the registered model; without a scheduler the snapshot then runs in place.
absl::StatusOr<ConfusionMatrix> Evaluate(const RunContext& run, model::Unet& model,
                                         data::Loader& loader,
                                         const std::function<bool()>& cancelled,
                                         bool bfloat16 = false);

// The serving snapshot Evaluate makes (a copy of `model`'s weights, folded, in bf16 when
// asked), for evaluating one model on many loaders without copying it each time.
absl::StatusOr<std::shared_ptr<const registry::LoadedModel>> EvaluationSnapshot(
    const RunContext& run, model::Unet& model, bool bfloat16);
// Evaluate with a snapshot from EvaluationSnapshot: on run.eval_scheduler when the run has
// one, else in place.
absl::StatusOr<ConfusionMatrix> EvaluateSnapshot(
    const RunContext& run, const std::shared_ptr<const registry::LoadedModel>& snapshot,
    data::Loader& loader, const std::function<bool()>& cancelled);

// Per tap of UnetImpl::TapNames(), per channel: statistics of the per-image spatial mean over
// every image of `loader` (ReferenceStatsJson). Model in eval mode.
absl::StatusOr<nlohmann::json> ComputeReferenceStats(model::Unet& model, data::Loader& loader,
                                                     const torch::Device& device,
                                                     bool channels_last,
                                                     const std::function<bool()>& cancelled);

// ComputeReferenceStats for a run: through the serving core's batching scheduler when the run
// has one (a served snapshot of `model`; the taps' channel means come back per image), else
// in place.
absl::StatusOr<nlohmann::json> ComputeReferenceStats(const RunContext& run, model::Unet& model,
                                                     data::Loader& loader,
                                                     const std::function<bool()>& cancelled);

// Converts 4-D parameters and buffers to channels-last in place.
void ToChannelsLast(model::Unet& model);

// Dynamic loss scaling for fp16 training (what torch.cuda.amp.GradScaler does): the loss is
// multiplied by the scale before backward so small fp16 gradients do not flush to zero; the
// gradients are divided by it again before the optimizer step. A step whose gradients hold
// inf or NaN is skipped and the scale halves; after `growth_interval` good steps in a row
// it doubles. Gradients and weights stay fp32 (autocast keeps master weights).
class LossScaler {
 public:
  explicit LossScaler(double initial_scale = 65536.0, int growth_interval = 2000)
      : scale_(initial_scale), growth_interval_(growth_interval) {}

  torch::Tensor Scale(const torch::Tensor& loss) const { return loss * scale_; }
  // Unscales the gradients of `params` in place and updates the scale. True when they are
  // all finite (take the optimizer step), false when the step must be skipped.
  bool UnscaleAndUpdate(const std::vector<torch::Tensor>& params);

  double scale() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }

 private:
  double scale_;
  const int growth_interval_;
  int good_steps_ = 0;
  int64_t skipped_ = 0;
};

// One optimisation step as the TRAIN job runs it (and bench/training measures it):
// zero_grad; the forward pass under autocast for "bf16"/"fp16" (TrainSpec::precision); the
// loss in fp32; backward, scaled when `scaler` is given; the optimizer step, skipped when the
// scaler found inf/NaN gradients. Returns the loss (not synced to the host).
torch::Tensor TrainStep(model::Unet& model, torch::optim::Optimizer& optimizer,
                        const torch::Tensor& x, const torch::Tensor& y, double ce_weight,
                        double dice_weight, const std::string& precision, LossScaler* scaler);

}  // namespace segserve::training::internal
