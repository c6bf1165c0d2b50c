// File: server/inference/preprocess.h — request images to model inputs: the raw-tensor
// form of the API, channel conversion to the model's channel count, scaling to [0, 1]
// and the model's per-channel normalisation, as planar (CHW) floats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/image.h"
#include "server/model/model_config.h"

namespace segserve::inference {

// A normalised model input: channels planes of height x width floats.
struct PlanarImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> data;  // channels * height * width
};

enum class RawDType { kUInt8, kUInt16, kFloat32 };

// Builds an Image from the API's raw tensor (HWC, little-endian). InvalidArgument naming
// `image.raw.*` for zero or oversized dimensions (max_pixels), channels outside 1..4,
// and a byte count that does not match height*width*channels*sizeof(dtype).
absl::StatusOr<data::Image> ImageFromRaw(int height, int width, int channels, RawDType dtype,
                                         const std::string& bytes, int64_t max_pixels);

// Converts `image` to the model's channels and normalisation:
// gray -> RGB replicates, RGB(A) -> gray uses ITU-R BT.601 luma, RGBA -> RGB drops alpha.
// Other combinations (e.g. 3 -> 4) are InvalidArgument naming `image` and both counts.
absl::StatusOr<PlanarImage> ToModelInput(const data::Image& image,
                                         const model::UnetConfig& config);

}  // namespace segserve::inference
