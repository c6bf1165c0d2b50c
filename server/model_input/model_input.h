// File: server/model_input/model_input.h — images to model inputs, the rules every forward
// pass's caller shares (inference, susceptibility analysis, training evaluation): channel
// conversion to the model's channel count (gray -> RGB(A) replicates, RGB(A) -> gray is
// BT.601 luma, RGBA -> RGB drops alpha; nothing else), scaling to [0, 1] and the model's
// per-channel normalisation (ImageNet mean/std unless the config says otherwise), planar
// (CHW) floats out.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/image.h"
#include "server/model/model_config.h"

namespace segserve::model_input {

enum class ChannelRule { kSame, kReplicateGray, kLuma, kDropAlpha };

// How `in` image channels become the model's `out`. InvalidArgument
// "<field>: has <in> channels; the model expects <out> (accepted: gray, RGB, RGBA)" otherwise.
absl::StatusOr<ChannelRule> ChannelRuleFor(int in, int out, const std::string& field);

// A normalised model input: channels planes of height x width floats.
struct PlanarImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> data;  // channels * height * width
};

// `image` (any depth, interleaved) as the model's normalised planar input. Field "image".
// The view form reads a request's raw tensor where it lies (no copy of its bytes).
absl::StatusOr<PlanarImage> ToModelInput(const data::ImageView& image,
                                         const model::UnetConfig& config);
absl::StatusOr<PlanarImage> ToModelInput(const data::Image& image,
                                         const model::UnetConfig& config);

// A batch already on the [0, 1] scale, planar (n x in_channels x h x w, as the data loader
// yields), as the model's normalised input (n x config.in_channels x h x w).
absl::StatusOr<std::vector<float>> UnitBatchToModelInput(const float* unit, int n,
                                                         int in_channels, int h, int w,
                                                         const model::UnetConfig& config,
                                                         const std::string& field);

}  // namespace segserve::model_input
