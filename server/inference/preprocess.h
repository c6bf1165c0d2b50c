// File: server/inference/preprocess.h — request images to model inputs: the raw-tensor
// form of the API here; channel conversion, scaling and normalisation are the model-input
// module's (server/model_input/model_input.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/data/image.h"
#include "server/model/model_config.h"
#include "server/model_input/model_input.h"

namespace segserve::inference {

// The model-input module's conversion, under the names the inference code uses.
using model_input::PlanarImage;
using model_input::ToModelInput;

enum class RawDType { kUInt8, kUInt16, kFloat32 };

// Checks the API's raw tensor (HWC, little-endian) and returns a view of its bytes where
// they lie (no copy: `bytes` must outlive the view). InvalidArgument naming `image.raw.*`
// for zero or oversized dimensions (max_pixels), channels outside 1..4, and a byte count
// that does not match height*width*channels*sizeof(dtype).
absl::StatusOr<data::ImageView> RawTensorView(int height, int width, int channels,
                                              RawDType dtype, std::string_view bytes,
                                              int64_t max_pixels);

}  // namespace segserve::inference
