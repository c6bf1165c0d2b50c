// File: server/model_input/tap_means.h — per-image channel means of a forward pass's feature
// taps, the one currency between the forward pass (inference executor, training evaluation,
// analysis) and the statistics built on it (susceptibility analysis, drift monitoring,
// reference statistics). Torch-free; ChannelMeans (channel_means.h) computes them.
#pragma once

#include <string>
#include <vector>

namespace segserve::model_input {

// Per-image spatial means of every channel of one tapped layer, for a batch of images:
// values[i * channels + c].
struct LayerMeans {
  std::string layer;
  int images = 0;
  int channels = 0;
  std::vector<float> values;
  const float* image(int i) const { return values.data() + static_cast<size_t>(i) * channels; }
};
// One entry per tapped layer, in the model's tap order (UnetImpl::TapNames()).
using TapMeans = std::vector<LayerMeans>;

// The means of image `i` of `batch` alone (a batch of one), e.g. to hand one item of an
// executed batch to its caller.
TapMeans ImageOf(const TapMeans& batch, int i);

}  // namespace segserve::model_input
