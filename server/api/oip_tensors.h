// File: server/api/oip_tensors.h — Open Inference Protocol tensors <-> segserve's images and
// results: the `image` input (UINT8 or FP32, NHWC, raw or typed contents) becomes N
// images; N segmentation results become the `mask` and `probabilities` outputs in
// raw_output_contents. Every client-caused error is INVALID_ARGUMENT naming the tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/open_inference.pb.h"
#include "server/data/image.h"
#include "server/inference/engine.h"
#include "server/model/model_config.h"

namespace segserve::api {

namespace oip = ::inference;

inline constexpr char kOipInput[] = "image";
inline constexpr char kOipMask[] = "mask";
inline constexpr char kOipProbabilities[] = "probabilities";

struct OipLimits {
  int64_t max_image_pixels = 4096ll * 4096;  // per image (H * W)
  int max_batch = 64;                        // N
};

// The request's one input tensor as N images of the same size. Raw contents must be the
// only form used (all inputs raw, no typed contents); typed UINT8 values must be 0..255.
absl::StatusOr<std::vector<data::Image>> ImagesFromInferRequest(
    const oip::ModelInferRequest& request, const OipLimits& limits);

// Which outputs the request asks for, in its order. Empty list = {mask}. Unknown or
// repeated names are INVALID_ARGUMENT naming them.
absl::StatusOr<std::vector<std::string>> RequestedOutputs(const oip::ModelInferRequest& request);

// Engine parameters from the request's parameters ("tile_size" int64, "tile_overlap"
// double); other parameters (tritonclient's priority, timeout, ...) are ignored.
absl::StatusOr<inference::SegmentParams> ParamsFromInferRequest(
    const oip::ModelInferRequest& request, const std::vector<std::string>& outputs);

// Fills outputs and raw_output_contents from per-image results (all of one size).
void FillInferResponse(const std::vector<inference::SegmentResult>& results,
                       const std::vector<std::string>& outputs, oip::ModelInferResponse* out);

// The model's tensors as ModelMetadata describes them.
void FillTensorMetadata(const model::UnetConfig& config, oip::ModelMetadataResponse* out);

// The dynamic batcher's settings as Triton's ModelConfig states them.
struct OipBatching {
  int preferred_batch_size = 0;       // the scheduler's max batch; 0 = not stated
  int64_t max_queue_delay_us = 0;
};

// The model's tensors as Triton's ModelConfig describes them (batch dimension left out,
// max_batch_size = limits.max_batch), under the name asked for.
void FillModelConfig(const model::UnetConfig& config, const std::string& name,
                     const OipLimits& limits, const OipBatching& batching, oip::ModelConfig* out);

// A model_version string: "" -> 0 (as Segment resolves it), else a positive integer.
// InvalidArgument naming `field` otherwise.
absl::StatusOr<int64_t> ParseModelVersion(const std::string& version, const std::string& field);

}  // namespace segserve::api
