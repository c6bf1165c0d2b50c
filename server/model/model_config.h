// File: server/model/model_config.h — the U-net's configuration (encoder, skip pruning level,
// channels, classes, input normalisation): validation, names and JSON. Torch-free, so the
// registry and the API layer can include it cheaply.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace segserve::model {

enum class EncoderKind { kResNet18, kResNet34 };

inline constexpr int kMaxSkipPruneLevel = 4;
inline constexpr int kMaxInChannels = 4;
inline constexpr int kMinClasses = 2;

// "resnet18" / "resnet34".
std::string_view EncoderName(EncoderKind kind);
// Case-sensitive inverse of EncoderName; InvalidArgument naming `encoder` otherwise.
absl::StatusOr<EncoderKind> ParseEncoderKind(std::string_view name);

struct UnetConfig {
  EncoderKind encoder = EncoderKind::kResNet18;
  // 0..4: number of skip connections removed top-down (1 removes the stride-2 skip).
  int skip_prune_level = 0;
  // 1..4 (1 for MR, 3 for RGB).
  int in_channels = 3;
  // >= 2 (background included); the model outputs one logit per class.
  int classes = 2;
  // Per input channel normalisation applied by the caller (x - mean) / std, size in_channels.
  // Empty means the default: ImageNet statistics for 3 channels, 0.5 / 0.5 otherwise.
  std::vector<float> mean;
  std::vector<float> std;
};

// Returns `config` with empty mean/std replaced by the defaults for its channel count.
UnetConfig WithDefaultNormalisation(UnetConfig config);

// OK or InvalidArgument naming the field and its limit. Empty mean/std are valid (defaults);
// otherwise their sizes must equal in_channels and every std must be > 0.
absl::Status Validate(const UnetConfig& config);

// {"encoder": "resnet18", "skip_prune_level": 1, "in_channels": 3, "classes": 2,
//  "mean": [...], "std": [...]} with the defaults filled in.
nlohmann::json ToJson(const UnetConfig& config);
// Parses and validates; missing mean/std take the defaults. InvalidArgument on bad input.
absl::StatusOr<UnetConfig> UnetConfigFromJson(const nlohmann::json& json);

bool operator==(const UnetConfig& a, const UnetConfig& b);
inline bool operator!=(const UnetConfig& a, const UnetConfig& b) { return !(a == b); }

}  // namespace segserve::model
