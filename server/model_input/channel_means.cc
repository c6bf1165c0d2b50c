#include "server/model_input/channel_means.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace segserve::model_input {

absl::StatusOr<TapMeans> ChannelMeans(const model::UnetOutput& output) {
  TapMeans out;
  out.reserve(output.taps.size());
  try {
    torch::InferenceMode inference_mode;
    for (const model::NamedTensor& tap : output.taps) {
      if (tap.tensor.dim() != 4) {
        return absl::InvalidArgumentError(
            absl::StrCat("tap ", tap.name, ": expected 4-D, got ", tap.tensor.dim(), "-D"));
      }
      const torch::Tensor means =
          tap.tensor.mean({2, 3}, false, torch::kFloat).to(torch::kCPU).contiguous();
      LayerMeans l;
      l.layer = tap.name;
      l.images = static_cast<int>(means.size(0));
      l.channels = static_cast<int>(means.size(1));
      const float* p = means.data_ptr<float>();
      l.values.assign(p, p + means.numel());
      out.push_back(std::move(l));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("channel means: ", e.what_without_backtrace()));
  }
  return out;
}

TapMeans ImageOf(const TapMeans& batch, int i) {
  TapMeans out;
  out.reserve(batch.size());
  for (const LayerMeans& layer : batch) {
    LayerMeans one;
    one.layer = layer.layer;
    one.images = 1;
    one.channels = layer.channels;
    one.values.assign(layer.image(i), layer.image(i) + layer.channels);
    out.push_back(std::move(one));
  }
  return out;
}

}  // namespace segserve::model_input
