#include "server/api/converters.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/data/codec.h"
#include "server/inference/preprocess.h"

namespace segserve::api {

absl::StatusOr<inference::ImageInput> ImageFromProto(const v1::Image& image, int64_t max_pixels) {
  inference::ImageInput input;
  switch (image.source_case()) {
    case v1::Image::kEncoded: {
      auto info = data::ProbeImage(image.encoded());
      if (!info.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.encoded: ", info.status().message()));
      }
      const int64_t pixels = static_cast<int64_t>(info->width) * info->height;
      if (info->width <= 0 || info->height <= 0) {
        return absl::InvalidArgumentError("image.encoded: the image has no pixels");
      }
      if (pixels > max_pixels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "image.encoded: ", info->width, "x", info->height, " = ", pixels,
            " pixels exceeds the limit of ", max_pixels, " (--max_image_pixels)"));
      }
      input.encoded = image.encoded();  // a view: the request outlives the engine's use
      return input;
    }
    case v1::Image::kRaw: {
      const v1::RawTensor& raw = image.raw();
      inference::RawDType dtype;
      switch (raw.dtype()) {
        case v1::DTYPE_UINT8: dtype = inference::RawDType::kUInt8; break;
        case v1::DTYPE_UINT16: dtype = inference::RawDType::kUInt16; break;
        case v1::DTYPE_FLOAT32: dtype = inference::RawDType::kFloat32; break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "image.raw.dtype: must be DTYPE_UINT8, DTYPE_UINT16 or DTYPE_FLOAT32, got ",
              static_cast<int>(raw.dtype())));
      }
      auto view = inference::RawTensorView(raw.height(), raw.width(), raw.channels(), dtype,
                                           raw.data(), max_pixels);
      if (!view.ok()) return view.status();
      input.raw = *view;
      return input;
    }
    default:
      return absl::InvalidArgumentError("image: set one of image.encoded or image.raw");
  }
}

absl::StatusOr<inference::SegmentParams> ParamsFromProto(const v1::SegmentOptions& options) {
  inference::SegmentParams params;
  params.return_probabilities = options.return_probabilities();
  params.tile_size = options.tile_size();
  params.tile_overlap = options.tile_overlap();
  if (options.mask_encoding() != v1::MASK_ENCODING_UNSPECIFIED &&
      options.mask_encoding() != v1::MASK_PNG && options.mask_encoding() != v1::MASK_RAW) {
    return absl::InvalidArgumentError(absl::StrCat("options.mask_encoding: unknown value ",
                                                   static_cast<int>(options.mask_encoding())));
  }
  return params;
}

absl::Status FillSegmentResponse(const inference::SegmentResult& result,
                                 const v1::SegmentOptions& options, v1::SegmentResponse* out) {
  out->set_model_name(result.model_name);
  out->set_model_version(result.model_version);
  out->set_height(result.mask.height);
  out->set_width(result.mask.width);
  out->set_tiles(result.tiles);
  out->set_precision(result.bfloat16 ? "bf16" : "fp32");
  out->set_shift_score(result.shift_score);
  if (options.mask_encoding() == v1::MASK_RAW) {
    out->set_mask_encoding(v1::MASK_RAW);
    out->set_mask(std::string(result.mask.ids.begin(), result.mask.ids.end()));
  } else {
    auto png = data::EncodePng(result.mask);
    if (!png.ok()) return png.status();
    out->set_mask_encoding(v1::MASK_PNG);
    out->set_mask(std::move(*png));
  }
  for (double fraction : result.class_fractions) out->add_class_fractions(fraction);
  if (!result.probabilities.empty()) {
    auto* probs = out->mutable_probabilities();
    probs->set_classes(result.classes);
    probs->set_height(result.mask.height);
    probs->set_width(result.mask.width);
    std::string bytes(result.probabilities.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), result.probabilities.data(), bytes.size());
    probs->set_data(std::move(bytes));
  }
  auto* timings = out->mutable_timings();
  timings->set_queue_seconds(result.timings.queue_seconds);
  timings->set_preprocess_seconds(result.timings.preprocess_seconds);
  timings->set_compute_seconds(result.timings.compute_seconds);
  timings->set_postprocess_seconds(result.timings.postprocess_seconds);
  timings->set_total_seconds(result.timings.total_seconds);
  return absl::OkStatus();
}

void ConfigToProto(const model::UnetConfig& config, v1::ModelConfig* out) {
  out->set_encoder(config.encoder == model::EncoderKind::kResNet18 ? v1::ENCODER_RESNET18
                                                                   : v1::ENCODER_RESNET34);
  out->set_skip_prune_level(config.skip_prune_level);
  out->set_in_channels(config.in_channels);
  out->set_classes(config.classes);
  const model::UnetConfig full = model::WithDefaultNormalisation(config);
  for (float m : full.mean) out->add_mean(m);
  for (float s : full.std) out->add_std(s);
}

absl::StatusOr<model::UnetConfig> ConfigFromProto(const v1::ModelConfig& proto) {
  model::UnetConfig config;
  switch (proto.encoder()) {
    case v1::ENCODER_RESNET18: config.encoder = model::EncoderKind::kResNet18; break;
    case v1::ENCODER_UNSPECIFIED:
    case v1::ENCODER_RESNET34: config.encoder = model::EncoderKind::kResNet34; break;
    default:
      return absl::InvalidArgumentError("config.encoder: must be ENCODER_RESNET18 or _RESNET34");
  }
  config.skip_prune_level = proto.skip_prune_level();
  config.in_channels = proto.in_channels() == 0 ? 3 : proto.in_channels();
  config.classes = proto.classes() == 0 ? 2 : proto.classes();
  config.mean.assign(proto.mean().begin(), proto.mean().end());
  config.std.assign(proto.std().begin(), proto.std().end());
  if (absl::Status s = model::Validate(config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config.", s.message()));
  }
  return config;
}

void ModelStatusToProto(const registry::ModelStatus& status, v1::ModelInfo* out) {
  out->set_name(status.stored.name);
  out->set_version(status.stored.version);
  ConfigToProto(status.stored.config, out->mutable_config());
  switch (status.state) {
    case registry::LoadState::kUnloaded: out->set_state(v1::LOAD_STATE_UNLOADED); break;
    case registry::LoadState::kLoading: out->set_state(v1::LOAD_STATE_LOADING); break;
    case registry::LoadState::kLoaded: out->set_state(v1::LOAD_STATE_LOADED); break;
    case registry::LoadState::kFailed: out->set_state(v1::LOAD_STATE_FAILED); break;
  }
  out->set_load_error(status.load_error);
  for (const auto& alias : status.aliases) out->add_aliases(alias);
  out->set_created_unix_seconds(status.stored.created_unix_seconds);
  out->set_checkpoint_bytes(status.stored.checkpoint_bytes);
  out->set_disk_bytes(status.stored.disk_bytes);
  out->set_precision(status.precision);
  out->set_checkpoint_sha256(status.stored.checkpoint_sha256);
  const auto& metadata = status.stored.metadata;
  if (metadata.contains("metrics") && metadata["metrics"].is_object()) {
    for (const auto& [key, value] : metadata["metrics"].items()) {
      if (value.is_number()) (*out->mutable_metrics())[key] = value.get<double>();
    }
  }
  out->set_source_job_id(metadata.value("source_job_id", ""));
  out->set_has_reference_stats(metadata.contains("reference_stats"));
  if (metadata.contains("class_names") && metadata["class_names"].is_array()) {
    for (const auto& name : metadata["class_names"]) {
      if (name.is_string()) out->mutable_config()->add_class_names(name.get<std::string>());
    }
  }
}

}  // namespace segserve::api
