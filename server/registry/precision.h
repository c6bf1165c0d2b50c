// File: server/registry/precision.h — which arithmetic a model version is served in.
//
// `--precision` chooses for every loaded version:
//   fp32  float32 (the default);
//   bf16  bfloat16 weights and activations, float32 logits (about 2x on CPUs with AVX-512
//         BF16 or AMX, docs/PERFORMANCE.md);
//   auto  per version: bf16 when the version's own accuracy check passed — its metadata
//         holds metrics "test_iou" (float32) and "test_iou_bf16" (the same test split served
//         in bf16; a training job with TrainSpec.bf16_check records both) and the float32
//         IoU exceeds the bf16 one by at most `max_iou_drop` — and the device has fast
//         bf16 arithmetic; float32 otherwise (imported models, which carry no check).
// The choice and its reason are logged when the version loads, shown by Models.List/Get
// (ModelInfo.precision) and returned with every answer (SegmentResponse.precision).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace segserve::registry {

enum class PrecisionMode { kFp32, kBf16, kAuto };

// "fp32", "bf16" or "auto"; InvalidArgument naming `field` otherwise.
absl::StatusOr<PrecisionMode> ParsePrecisionMode(std::string_view text, std::string_view field);
std::string_view PrecisionModeName(PrecisionMode mode);

struct PrecisionPolicy {
  PrecisionMode mode = PrecisionMode::kFp32;
  // auto: the largest fp32 - bf16 test IoU drop that still serves bf16.
  double max_iou_drop = 0.01;
  // auto: whether the serving device computes bf16 fast (DeviceHasFastBf16). Without it
  // bf16 is emulated and slower than fp32, so auto keeps fp32.
  bool fast_bf16 = true;
};

struct PrecisionChoice {
  bool bfloat16 = false;
  std::string reason;  // for the log, e.g. "auto: test IoU bf16 0.9312 vs fp32 0.9320"
};

// The precision a version with `metadata` (StoredVersion::metadata) is served in.
PrecisionChoice ChoosePrecision(const PrecisionPolicy& policy, const nlohmann::json& metadata);

// "cuda..." devices: true (bf16 tensor cores from Ampere on; older GPUs still run it).
// "cpu": common::CpuHasFastBf16() (/proc/cpuinfo lists avx512_bf16 or amx_bf16).
bool DeviceHasFastBf16(const std::string& device);

inline std::string_view PrecisionName(bool bfloat16) { return bfloat16 ? "bf16" : "fp32"; }

}  // namespace segserve::registry
