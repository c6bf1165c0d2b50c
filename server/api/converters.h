// File: server/api/converters.h — protobuf <-> domain types for the v1 services. Every
// client-caused error names the request field and the limit.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "segserve/v1/models.pb.h"
#include "segserve/v1/segmentation.pb.h"
#include "server/inference/engine.h"
#include "server/model/model_config.h"
#include "server/registry/registry.h"

namespace segserve::api {

// Encoded bytes are probed (header only: format, size against max_pixels) and decoded
// later on the engine's pool; raw tensors are checked here. Neither is copied: the result
// views `image`'s bytes, which must outlive the engine's use (until its callback runs).
absl::StatusOr<inference::ImageInput> ImageFromProto(const v1::Image& image, int64_t max_pixels);

absl::StatusOr<inference::SegmentParams> ParamsFromProto(const v1::SegmentOptions& options);

// Fills the response (mask encoded as requested, fractions, probabilities, timings).
absl::Status FillSegmentResponse(const inference::SegmentResult& result,
                                 const v1::SegmentOptions& options, v1::SegmentResponse* out);

void ConfigToProto(const model::UnetConfig& config, v1::ModelConfig* out);
// Unset fields take defaults: RESNET34, 3 input channels, 2 classes, normalisation by
// channel count. InvalidArgument naming `config.*` otherwise.
absl::StatusOr<model::UnetConfig> ConfigFromProto(const v1::ModelConfig& config);

void ModelStatusToProto(const registry::ModelStatus& status, v1::ModelInfo* out);

}  // namespace segserve::api
