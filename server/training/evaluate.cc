// File: server/training/evaluate.cc — loss, IoU evaluation and reference statistics.
#include <torch/torch.h>

#include <atomic>

#include "server/common/status_macros.h"
#include "server/inference/background_forward.h"
#include "server/model/servable_model.h"
#include "server/model_input/channel_means.h"
#include "server/training/trainer_internal.h"

namespace segserve::training::internal {

std::mutex& InitMutex() {
  static std::mutex mu;
  return mu;
}

torch::Tensor BatchImages(const data::Batch& batch, const torch::Device& device,
                          bool channels_last) {
  // from_blob aliases the batch; clone so that autograd's saved inputs own their memory.
  torch::Tensor x = torch::from_blob(const_cast<float*>(batch.images.data()),
                                     {batch.n, batch.c, batch.h, batch.w}, torch::kFloat)
                        .to(device)
                        .clone();
  return channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

torch::Tensor BatchMasks(const data::Batch& batch, const torch::Device& device) {
  return torch::from_blob(const_cast<uint8_t*>(batch.masks.data()), {batch.n, batch.h, batch.w},
                          torch::kUInt8)
      .to(device, torch::kLong);
}

absl::StatusOr<ConfusionMatrix> Evaluate(model::Unet& model, data::Loader& loader,
                                         const torch::Device& device, bool channels_last,
                                         const std::function<bool()>& cancelled) {
  torch::NoGradGuard no_grad;
  model->eval();
  ConfusionMatrix cm(model->config().classes);
  loader.StartEpoch(0);
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("evaluation cancelled");
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader.Next());
    if (!batch) break;
    const torch::Tensor pred = model->forward(BatchImages(*batch, device, channels_last))
                                   .argmax(1)
                                   .to(torch::kCPU, torch::kUInt8)
                                   .contiguous();
    cm.Add(batch->masks.data(), pred.data_ptr<uint8_t>(), batch->masks.size());
  }
  return cm;
}

namespace {

// `model` as the serving core runs it: a copy of its weights (training goes on with the
// original), eval mode, BatchNorm folded, under a name of its own so that its work items
// batch only with each other. Each snapshot gets a new version: its queue is its own.
absl::StatusOr<std::shared_ptr<const registry::LoadedModel>> ServingSnapshot(
    model::Unet& model, const torch::Device& device, bool channels_last, bool bfloat16 = false) {
  static std::atomic<int64_t> snapshots{0};
  model::Unet copy{nullptr};
  {
    std::lock_guard<std::mutex> lock(InitMutex());  // construction draws initial weights
    copy = model::Unet(model->config());
  }
  {
    torch::NoGradGuard no_grad;
    auto params = copy->named_parameters();
    for (const auto& p : model->named_parameters()) params[p.key()].copy_(p.value());
    auto buffers = copy->named_buffers();
    for (const auto& b : model->named_buffers()) buffers[b.key()].copy_(b.value());
  }
  model::ServeOptions serve;
  serve.fold_bn = true;
  serve.channels_last = channels_last;
  serve.device = device.str();
  serve.bfloat16 = bfloat16;
  ASSIGN_OR_RETURN(std::unique_ptr<model::ServableModel> servable,
                   model::ServableModel::Create(std::move(copy), serve));
  auto loaded = std::make_shared<registry::LoadedModel>();
  loaded->stored.name = "training-evaluation";
  loaded->stored.version = ++snapshots;
  loaded->stored.config = model->config();
  loaded->servable = std::move(servable);
  loaded->bfloat16 = bfloat16;
  return std::shared_ptr<const registry::LoadedModel>(std::move(loaded));
}

// A loader batch (already the model's normalised input) as background work for `snapshot`;
// its images are moved, not copied.
inference::BackgroundBatch WorkOf(std::shared_ptr<const registry::LoadedModel> snapshot,
                                  data::Batch& batch) {
  inference::BackgroundBatch work;
  work.model = std::move(snapshot);
  work.n = batch.n;
  work.c = batch.c;
  work.h = batch.h;
  work.w = batch.w;
  work.input = std::move(batch.images);
  work.admit = false;  // the job scheduler bounds how many jobs evaluate at once
  return work;
}

}  // namespace

absl::StatusOr<ConfusionMatrix> Evaluate(const RunContext& run, model::Unet& model,
                                         data::Loader& loader,
                                         const std::function<bool()>& cancelled, bool bfloat16) {
  if (run.eval_scheduler == nullptr && !bfloat16) {
    return Evaluate(model, loader, run.device, run.channels_last, cancelled);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const registry::LoadedModel> snapshot,
                   ServingSnapshot(model, run.device, run.channels_last, bfloat16));
  return EvaluateSnapshot(run, snapshot, loader, cancelled);
}

absl::StatusOr<std::shared_ptr<const registry::LoadedModel>> EvaluationSnapshot(
    const RunContext& run, model::Unet& model, bool bfloat16) {
  return ServingSnapshot(model, run.device, run.channels_last, bfloat16);
}

absl::StatusOr<ConfusionMatrix> EvaluateSnapshot(
    const RunContext& run, const std::shared_ptr<const registry::LoadedModel>& snapshot,
    data::Loader& loader, const std::function<bool()>& cancelled) {
  const int classes = snapshot->stored.config.classes;
  ConfusionMatrix cm(classes);
  std::vector<uint8_t> pred;
  loader.StartEpoch(0);
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("evaluation cancelled");
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader.Next());
    if (!batch) break;
    const size_t plane = static_cast<size_t>(batch->h) * batch->w;
    std::vector<inference::LogitsView> logits;
    torch::Tensor in_place;  // owns the logits when there is no scheduler
    if (run.eval_scheduler != nullptr) {
      ASSIGN_OR_RETURN(logits,
                       inference::ForwardForLogits(*run.eval_scheduler, WorkOf(snapshot, *batch)));
    } else {
      ASSIGN_OR_RETURN(in_place, snapshot->servable->Forward(BatchImages(*batch, run.device,
                                                                         /*channels_last=*/false)));
      in_place = in_place.to(torch::kCPU).contiguous();
      for (int i = 0; i < batch->n; ++i) {
        logits.emplace_back(nullptr, in_place.data_ptr<float>() + i * plane * classes,
                            plane * classes);
      }
    }
    pred.resize(plane);
    for (int i = 0; i < batch->n; ++i) {
      if (logits[i].size() != plane * classes) {
        return absl::InternalError("evaluation: logits do not match the image size");
      }
      const float* l = logits[i].data();
      for (size_t p = 0; p < plane; ++p) {
        int best = 0;
        for (int c = 1; c < classes; ++c) {
          if (l[c * plane + p] > l[best * plane + p]) best = c;
        }
        pred[p] = static_cast<uint8_t>(best);
      }
      cm.Add(batch->masks.data() + i * plane, pred.data(), plane);
    }
  }
  return cm;
}

namespace {

// Appends a batch's per-image tap channel means to `layers`.
void AddTapMeans(const model_input::TapMeans& means, std::vector<LayerReference>& layers) {
  for (size_t i = 0; i < means.size() && i < layers.size(); ++i) {
    layers[i].channels = means[i].channels;
    for (int k = 0; k < means[i].images; ++k) {
      layers[i].samples.emplace_back(means[i].image(k), means[i].image(k) + means[i].channels);
    }
  }
}

std::vector<LayerReference> EmptyLayers() {
  const auto& names = model::UnetImpl::TapNames();
  std::vector<LayerReference> layers(names.size());
  for (size_t i = 0; i < names.size(); ++i) layers[i].name = names[i];
  return layers;
}

}  // namespace

absl::StatusOr<nlohmann::json> ComputeReferenceStats(model::Unet& model, data::Loader& loader,
                                                     const torch::Device& device,
                                                     bool channels_last,
                                                     const std::function<bool()>& cancelled) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<LayerReference> layers = EmptyLayers();
  loader.StartEpoch(0);
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("reference statistics cancelled");
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader.Next());
    if (!batch) break;
    model::UnetOutput out = model->ForwardWithTaps(BatchImages(*batch, device, channels_last));
    // The same channel means the drift monitor will compare against (model-input module).
    ASSIGN_OR_RETURN(model_input::TapMeans means, model_input::ChannelMeans(out));
    AddTapMeans(means, layers);
  }
  return ReferenceStatsJson(layers);
}

absl::StatusOr<nlohmann::json> ComputeReferenceStats(const RunContext& run, model::Unet& model,
                                                     data::Loader& loader,
                                                     const std::function<bool()>& cancelled) {
  if (run.eval_scheduler == nullptr) {
    return ComputeReferenceStats(model, loader, run.device, run.channels_last, cancelled);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const registry::LoadedModel> snapshot,
                   ServingSnapshot(model, run.device, run.channels_last));
  std::vector<LayerReference> layers = EmptyLayers();
  loader.StartEpoch(0);
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("reference statistics cancelled");
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader.Next());
    if (!batch) break;
    ASSIGN_OR_RETURN(model_input::TapMeans means,
                     inference::ForwardForTapMeans(*run.eval_scheduler, WorkOf(snapshot, *batch)));
    AddTapMeans(means, layers);
  }
  return ReferenceStatsJson(layers);
}

void ToChannelsLast(model::Unet& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

}  // namespace segserve::training::internal
