#include "server/model_input/model_input.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/model_input/luma.h"

namespace segserve::model_input {
namespace {

// Writes one pixel's model channels from its [0, 1] source channels `v` (in of them).
inline void Convert(ChannelRule rule, const float* v, int out, float* dst) {
  switch (rule) {
    case ChannelRule::kSame:
    case ChannelRule::kDropAlpha:
      for (int c = 0; c < out; ++c) dst[c] = v[c];
      return;
    case ChannelRule::kReplicateGray:
      for (int c = 0; c < out; ++c) dst[c] = v[0];
      return;
    case ChannelRule::kLuma:
      dst[0] = Luma(v[0], v[1], v[2]);
      return;
  }
}

}  // namespace

absl::StatusOr<ChannelRule> ChannelRuleFor(int in, int out, const std::string& field) {
  if (in == out && in >= 1 && in <= 4) return ChannelRule::kSame;
  if (in == 1 && (out == 3 || out == 4)) return ChannelRule::kReplicateGray;
  if ((in == 3 || in == 4) && out == 1) return ChannelRule::kLuma;
  if (in == 4 && out == 3) return ChannelRule::kDropAlpha;
  return absl::InvalidArgumentError(absl::StrCat(field, ": has ", in,
                                                 " channels; the model expects ", out,
                                                 " (accepted: gray, RGB, RGBA)"));
}

absl::StatusOr<PlanarImage> ToModelInput(const data::Image& image,
                                         const model::UnetConfig& config) {
  return ToModelInput(image.view(), config);
}

absl::StatusOr<PlanarImage> ToModelInput(const data::ImageView& image,
                                         const model::UnetConfig& config) {
  const int in = image.channels;
  const int out = config.in_channels;
  absl::StatusOr<ChannelRule> rule = ChannelRuleFor(in, out, "image");
  if (!rule.ok()) return rule.status();
  const model::UnetConfig normalised = model::WithDefaultNormalisation(config);
  PlanarImage planar;
  planar.height = image.height;
  planar.width = image.width;
  planar.channels = out;
  const size_t plane = image.num_pixels();
  planar.data.resize(plane * static_cast<size_t>(out));
  for (size_t p = 0; p < plane; ++p) {
    const size_t base = p * static_cast<size_t>(in);
    float v[4];
    for (int c = 0; c < in; ++c) v[c] = image.GetNormalized(base + c);
    float converted[4];
    Convert(*rule, v, out, converted);
    for (int c = 0; c < out; ++c) {
      planar.data[static_cast<size_t>(c) * plane + p] =
          (converted[c] - normalised.mean[c]) / normalised.std[c];
    }
  }
  return planar;
}

absl::StatusOr<std::vector<float>> UnitBatchToModelInput(const float* unit, int n,
                                                         int in_channels, int h, int w,
                                                         const model::UnetConfig& config,
                                                         const std::string& field) {
  const int out = config.in_channels;
  absl::StatusOr<ChannelRule> rule = ChannelRuleFor(in_channels, out, field);
  if (!rule.ok()) return rule.status();
  const model::UnetConfig normalised = model::WithDefaultNormalisation(config);
  const size_t plane = static_cast<size_t>(h) * w;
  std::vector<float> result(static_cast<size_t>(n) * out * plane);
  for (int i = 0; i < n; ++i) {
    const float* src = unit + static_cast<size_t>(i) * in_channels * plane;
    float* dst = result.data() + static_cast<size_t>(i) * out * plane;
    for (size_t p = 0; p < plane; ++p) {
      float v[4];
      for (int c = 0; c < in_channels; ++c) v[c] = src[static_cast<size_t>(c) * plane + p];
      float converted[4];
      Convert(*rule, v, out, converted);
      for (int c = 0; c < out; ++c) {
        dst[static_cast<size_t>(c) * plane + p] =
            (converted[c] - normalised.mean[c]) / normalised.std[c];
      }
    }
  }
  return result;
}

}  // namespace segserve::model_input
