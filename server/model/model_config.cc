#include "server/model/model_config.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace segserve::model {
namespace {

constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

absl::StatusOr<std::vector<float>> FloatArray(const nlohmann::json& json, const char* field) {
  if (!json.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("config.", field, " must be an array"));
  }
  std::vector<float> values;
  for (const auto& v : json) {
    if (!v.is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("config.", field, " must hold numbers"));
    }
    values.push_back(v.get<float>());
  }
  return values;
}

absl::StatusOr<int> IntField(const nlohmann::json& json, const char* field) {
  auto it = json.find(field);
  if (it == json.end() || !it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat("config.", field, " must be an integer"));
  }
  return it->get<int>();
}

}  // namespace

std::string_view EncoderName(EncoderKind kind) {
  switch (kind) {
    case EncoderKind::kResNet18:
      return "resnet18";
    case EncoderKind::kResNet34:
      return "resnet34";
  }
  return "unknown";
}

absl::StatusOr<EncoderKind> ParseEncoderKind(std::string_view name) {
  if (name == "resnet18") return EncoderKind::kResNet18;
  if (name == "resnet34") return EncoderKind::kResNet34;
  return absl::InvalidArgumentError(absl::StrCat(
      "encoder must be \"resnet18\" or \"resnet34\", got \"", std::string(name), "\""));
}

UnetConfig WithDefaultNormalisation(UnetConfig config) {
  if (config.in_channels == 3) {
    if (config.mean.empty()) config.mean.assign(kImageNetMean, kImageNetMean + 3);
    if (config.std.empty()) config.std.assign(kImageNetStd, kImageNetStd + 3);
  } else if (config.in_channels > 0 && config.in_channels <= kMaxInChannels) {
    if (config.mean.empty()) config.mean.assign(config.in_channels, 0.5f);
    if (config.std.empty()) config.std.assign(config.in_channels, 0.5f);
  }
  return config;
}

absl::Status Validate(const UnetConfig& config) {
  if (config.encoder != EncoderKind::kResNet18 && config.encoder != EncoderKind::kResNet34) {
    return absl::InvalidArgumentError("encoder must be resnet18 or resnet34");
  }
  if (config.skip_prune_level < 0 || config.skip_prune_level > kMaxSkipPruneLevel) {
    return absl::InvalidArgumentError(absl::StrCat("skip_prune_level must be in [0, ",
                                                   kMaxSkipPruneLevel, "], got ",
                                                   config.skip_prune_level));
  }
  if (config.in_channels < 1 || config.in_channels > kMaxInChannels) {
    return absl::InvalidArgumentError(
        absl::StrCat("in_channels must be in [1, ", kMaxInChannels, "], got ", config.in_channels));
  }
  if (config.classes < kMinClasses) {
    return absl::InvalidArgumentError(
        absl::StrCat("classes must be >= ", kMinClasses, ", got ", config.classes));
  }
  if (!config.mean.empty() && static_cast<int>(config.mean.size()) != config.in_channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mean must have in_channels (", config.in_channels, ") values, got ", config.mean.size()));
  }
  if (!config.std.empty() && static_cast<int>(config.std.size()) != config.in_channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "std must have in_channels (", config.in_channels, ") values, got ", config.std.size()));
  }
  for (float m : config.mean) {
    if (!std::isfinite(m)) return absl::InvalidArgumentError("mean values must be finite");
  }
  for (float s : config.std) {
    if (!std::isfinite(s) || s <= 0.0f) {
      return absl::InvalidArgumentError("std values must be finite and > 0");
    }
  }
  return absl::OkStatus();
}

nlohmann::json ToJson(const UnetConfig& config) {
  const UnetConfig full = WithDefaultNormalisation(config);
  return nlohmann::json{{"encoder", std::string(EncoderName(full.encoder))},
                        {"skip_prune_level", full.skip_prune_level},
                        {"in_channels", full.in_channels},
                        {"classes", full.classes},
                        {"mean", full.mean},
                        {"std", full.std}};
}

absl::StatusOr<UnetConfig> UnetConfigFromJson(const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("config must be a JSON object");
  UnetConfig config;
  auto encoder = json.find("encoder");
  if (encoder == json.end() || !encoder->is_string()) {
    return absl::InvalidArgumentError("config.encoder must be a string");
  }
  auto kind = ParseEncoderKind(encoder->get<std::string>());
  if (!kind.ok()) return kind.status();
  config.encoder = *kind;
  auto level = IntField(json, "skip_prune_level");
  if (!level.ok()) return level.status();
  config.skip_prune_level = *level;
  auto in_channels = IntField(json, "in_channels");
  if (!in_channels.ok()) return in_channels.status();
  config.in_channels = *in_channels;
  auto classes = IntField(json, "classes");
  if (!classes.ok()) return classes.status();
  config.classes = *classes;
  if (auto it = json.find("mean"); it != json.end()) {
    auto mean = FloatArray(*it, "mean");
    if (!mean.ok()) return mean.status();
    config.mean = std::move(*mean);
  }
  if (auto it = json.find("std"); it != json.end()) {
    auto std_values = FloatArray(*it, "std");
    if (!std_values.ok()) return std_values.status();
    config.std = std::move(*std_values);
  }
  if (absl::Status status = Validate(config); !status.ok()) return status;
  return WithDefaultNormalisation(std::move(config));
}

bool operator==(const UnetConfig& a, const UnetConfig& b) {
  const UnetConfig fa = WithDefaultNormalisation(a);
  const UnetConfig fb = WithDefaultNormalisation(b);
  return fa.encoder == fb.encoder && fa.skip_prune_level == fb.skip_prune_level &&
         fa.in_channels == fb.in_channels && fa.classes == fb.classes && fa.mean == fb.mean &&
         fa.std == fb.std;
}

}  // namespace segserve::model
