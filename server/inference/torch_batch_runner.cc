#include "server/inference/torch_batch_runner.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "server/model/servable_model.h"
#include "server/model_input/channel_means.h"

namespace segserve::inference {

absl::StatusOr<BatchOutput> TorchBatchRunner::Run(const BatchInput& input) {
  if (input.model == nullptr || input.model->servable == nullptr) {
    return absl::InternalError("batch without a loaded model");
  }
  model::ServableModel& servable = *input.model->servable;
  torch::Tensor logits;
  BatchOutput out;
  try {
    // A view of the caller's floats (no copy); Forward moves it to the device.
    const torch::Tensor batch =
        torch::from_blob(const_cast<float*>(input.data),
                         {input.batch, input.channels, input.height, input.width},
                         torch::kFloat);
    if (input.tap_means) {
      auto output = servable.ForwardWithTaps(batch);
      if (!output.ok()) return output.status();
      auto means = model_input::ChannelMeans(*output);
      if (!means.ok()) return means.status();
      out.tap_means = std::move(*means);
      logits = std::move(output->logits);
    } else {
      auto output = servable.Forward(batch);
      if (!output.ok()) return output.status();
      logits = std::move(*output);
    }
    logits = logits.to(torch::kCPU, torch::kFloat).contiguous();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("forward pass: ", e.what_without_backtrace()));
  }
  auto owner = std::make_shared<torch::Tensor>(std::move(logits));
  out.logits = owner->data_ptr<float>();
  out.per_item = static_cast<size_t>(owner->numel()) / static_cast<size_t>(input.batch);
  out.owner = std::move(owner);
  return out;
}

}  // namespace segserve::inference
