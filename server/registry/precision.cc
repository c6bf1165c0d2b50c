#include "server/registry/precision.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/cpu_features.h"

namespace segserve::registry {

absl::StatusOr<PrecisionMode> ParsePrecisionMode(std::string_view text, std::string_view field) {
  if (text == "fp32") return PrecisionMode::kFp32;
  if (text == "bf16") return PrecisionMode::kBf16;
  if (text == "auto") return PrecisionMode::kAuto;
  return absl::InvalidArgumentError(absl::StrCat(
      std::string(field), ": must be fp32, bf16 or auto, got '", std::string(text), "'"));
}

std::string_view PrecisionModeName(PrecisionMode mode) {
  switch (mode) {
    case PrecisionMode::kFp32:
      return "fp32";
    case PrecisionMode::kBf16:
      return "bf16";
    case PrecisionMode::kAuto:
      return "auto";
  }
  return "fp32";
}

PrecisionChoice ChoosePrecision(const PrecisionPolicy& policy, const nlohmann::json& metadata) {
  switch (policy.mode) {
    case PrecisionMode::kFp32:
      return {false, "--precision=fp32"};
    case PrecisionMode::kBf16:
      return {true, "--precision=bf16"};
    case PrecisionMode::kAuto:
      break;
  }
  const nlohmann::json* metrics = nullptr;
  if (metadata.is_object()) {
    auto it = metadata.find("metrics");
    if (it != metadata.end() && it->is_object()) metrics = &*it;
  }
  auto number = [&](const char* key) -> const nlohmann::json* {
    if (metrics == nullptr) return nullptr;
    auto it = metrics->find(key);
    return it != metrics->end() && it->is_number() ? &*it : nullptr;
  };
  const nlohmann::json* fp32 = number("test_iou");
  const nlohmann::json* bf16 = number("test_iou_bf16");
  if (fp32 == nullptr || bf16 == nullptr) {
    return {false, "auto: no bf16 accuracy check recorded (train with bf16_check)"};
  }
  const double drop = fp32->get<double>() - bf16->get<double>();
  const std::string numbers =
      absl::StrFormat("test IoU bf16 %.4f vs fp32 %.4f (drop %.4f, limit %.4f)",
                      bf16->get<double>(), fp32->get<double>(), drop, policy.max_iou_drop);
  if (!(drop <= policy.max_iou_drop)) return {false, "auto: " + numbers};
  if (!policy.fast_bf16) {
    return {false, "auto: " + numbers + ", but the device has no fast bf16 arithmetic"};
  }
  return {true, "auto: " + numbers};
}

bool DeviceHasFastBf16(const std::string& device) {
  return absl::StartsWith(device, "cuda") || common::CpuHasFastBf16();
}

}  // namespace segserve::registry
