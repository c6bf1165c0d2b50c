// File: server/training/evaluate.cc — loss, IoU evaluation and reference statistics.
#include <torch/torch.h>

#include "server/common/status_macros.h"
#include "server/model_input/channel_means.h"
#include "server/training/trainer_internal.h"

namespace segserve::training::internal {

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

absl::StatusOr<nlohmann::json> ComputeReferenceStats(model::Unet& model, data::Loader& loader,
                                                     const torch::Device& device,
                                                     bool channels_last,
                                                     const std::function<bool()>& cancelled) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto& names = model::UnetImpl::TapNames();
  std::vector<LayerReference> layers(names.size());
  for (size_t i = 0; i < names.size(); ++i) layers[i].name = names[i];
  loader.StartEpoch(0);
  while (true) {
    if (cancelled && cancelled()) return absl::CancelledError("reference statistics cancelled");
    ASSIGN_OR_RETURN(std::optional<data::Batch> batch, loader.Next());
    if (!batch) break;
    model::UnetOutput out = model->ForwardWithTaps(BatchImages(*batch, device, channels_last));
    // The same channel means the drift monitor will compare against (model-input module).
    ASSIGN_OR_RETURN(model_input::TapMeans means, model_input::ChannelMeans(out));
    for (size_t i = 0; i < means.size() && i < layers.size(); ++i) {
      layers[i].channels = means[i].channels;
      for (int k = 0; k < means[i].images; ++k) {
        layers[i].samples.emplace_back(means[i].image(k), means[i].image(k) + means[i].channels);
      }
    }
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
