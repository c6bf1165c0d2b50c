#include "server/api/oip_tensors.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

// Raw tensor contents are little-endian; so is every platform segserve builds for.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw OIP contents assume little-endian");

namespace segserve::api {
namespace {

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(kOipInput, ": ", message));
}

void SetString(google::protobuf::Map<std::string, oip::InferParameter>& params,
               const std::string& key, const std::string& value) {
  params[key].set_string_param(value);
}

std::string Joined(const std::vector<float>& values) {
  return absl::StrJoin(values, ",", [](std::string* out, float v) { absl::StrAppend(out, v); });
}

}  // namespace

absl::StatusOr<std::vector<data::Image>> ImagesFromInferRequest(
    const oip::ModelInferRequest& request, const OipLimits& limits) {
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("inputs: expected exactly one input tensor '",
                                                   kOipInput, "', got ", request.inputs_size()));
  }
  const oip::ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.name() != kOipInput) {
    return absl::InvalidArgumentError(absl::StrCat("inputs[0].name: unknown input '", input.name(),
                                                   "'; the model's input is '", kOipInput, "'"));
  }
  data::PixelDepth depth;
  if (input.datatype() == "UINT8") {
    depth = data::PixelDepth::kU8;
  } else if (input.datatype() == "FP32") {
    depth = data::PixelDepth::kF32;
  } else {
    return Invalid(absl::StrCat("datatype must be UINT8 or FP32, got '", input.datatype(), "'"));
  }
  const auto& shape = input.shape();
  if (shape.size() != 4) {
    return Invalid(absl::StrCat("shape must be [N, H, W, C] (NHWC), got ", ShapeString(shape)));
  }
  const int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3];
  if (n < 1 || n > limits.max_batch) {
    return Invalid(absl::StrCat("shape[0] (batch) must be 1..", limits.max_batch, ", got ", n));
  }
  if (h < 1 || w < 1) {
    return Invalid(absl::StrCat("shape[1], shape[2] (height, width) must be positive, got ",
                                ShapeString(shape)));
  }
  if (h > limits.max_image_pixels || w > limits.max_image_pixels ||
      h * w > limits.max_image_pixels) {
    return Invalid(absl::StrCat(h, "x", w, " pixels per image exceeds the limit of ",
                                limits.max_image_pixels, " (--max_image_pixels)"));
  }
  if (c < 1 || c > 4) return Invalid(absl::StrCat("shape[3] (channels) must be 1..4, got ", c));

  const size_t per_image = static_cast<size_t>(h * w * c);
  const size_t elements = per_image * static_cast<size_t>(n);
  const size_t sample_bytes = data::BytesPerSample(depth);
  const oip::InferTensorContents& contents = input.contents();
  const bool raw = request.raw_input_contents_size() > 0;
  // The sizes are checked against the data that came before anything is allocated: the
  // shape alone could ask for gigabytes.
  if (raw) {
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw_input_contents: has ", request.raw_input_contents_size(),
                       " entries for ", request.inputs_size(), " input(s)"));
    }
    if (input.has_contents()) {
      return Invalid("both raw_input_contents and contents are set; use one");
    }
    const size_t size = request.raw_input_contents(0).size();
    if (size != elements * sample_bytes) {
      return Invalid(absl::StrCat("raw_input_contents[0] has ", size, " bytes; shape ",
                                  ShapeString(shape), " of ", input.datatype(), " needs ",
                                  elements * sample_bytes));
    }
  } else {
    const bool u8 = depth == data::PixelDepth::kU8;
    const size_t count =
        static_cast<size_t>(u8 ? contents.uint_contents_size() : contents.fp32_contents_size());
    if (count != elements) {
      return Invalid(absl::StrCat("contents.", u8 ? "uint_contents" : "fp32_contents", " has ",
                                  count, " values; shape ", ShapeString(shape), " needs ", elements,
                                  " (or send raw_input_contents)"));
    }
  }

  std::vector<data::Image> images(static_cast<size_t>(n));
  for (auto& image : images) {
    image.height = static_cast<int>(h);
    image.width = static_cast<int>(w);
    image.channels = static_cast<int>(c);
    image.depth = depth;
    image.bytes.resize(per_image * sample_bytes);
  }
  if (raw) {
    const std::string& bytes = request.raw_input_contents(0);
    for (size_t i = 0; i < images.size(); ++i) {
      std::memcpy(images[i].bytes.data(), bytes.data() + i * images[i].bytes.size(),
                  images[i].bytes.size());
    }
  } else if (depth == data::PixelDepth::kU8) {
    const auto& values = contents.uint_contents();
    for (size_t i = 0; i < elements; ++i) {
      const uint32_t v = values[static_cast<int>(i)];
      if (v > 255) {
        return Invalid(
            absl::StrCat("contents.uint_contents[", i, "] = ", v, " is outside UINT8 (0..255)"));
      }
      images[i / per_image].bytes[i % per_image] = static_cast<uint8_t>(v);
    }
  } else {
    const auto& values = contents.fp32_contents();
    for (size_t i = 0; i < images.size(); ++i) {
      std::memcpy(images[i].bytes.data(), values.data() + i * per_image, per_image * sizeof(float));
    }
  }
  return images;
}

absl::StatusOr<std::vector<std::string>> RequestedOutputs(const oip::ModelInferRequest& request) {
  std::vector<std::string> outputs;
  for (int i = 0; i < request.outputs_size(); ++i) {
    const std::string& name = request.outputs(i).name();
    if (name != kOipMask && name != kOipProbabilities) {
      return absl::InvalidArgumentError(absl::StrCat("outputs[", i, "].name: unknown output '",
                                                     name, "'; the model's outputs are '", kOipMask,
                                                     "' and '", kOipProbabilities, "'"));
    }
    if (std::find(outputs.begin(), outputs.end(), name) != outputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("outputs[", i, "].name: '", name, "' is requested twice"));
    }
    outputs.push_back(name);
  }
  if (outputs.empty()) outputs.push_back(kOipMask);
  return outputs;
}

absl::StatusOr<inference::SegmentParams> ParamsFromInferRequest(
    const oip::ModelInferRequest& request, const std::vector<std::string>& outputs) {
  inference::SegmentParams params;
  params.return_probabilities =
      std::find(outputs.begin(), outputs.end(), kOipProbabilities) != outputs.end();
  const auto& parameters = request.parameters();
  if (auto it = parameters.find("tile_size"); it != parameters.end()) {
    if (it->second.parameter_choice_case() != oip::InferParameter::kInt64Param) {
      return absl::InvalidArgumentError("parameters.tile_size: must be an int64_param");
    }
    params.tile_size = static_cast<int>(std::clamp<int64_t>(it->second.int64_param(), -1, 1 << 20));
  }
  if (auto it = parameters.find("tile_overlap"); it != parameters.end()) {
    if (it->second.parameter_choice_case() != oip::InferParameter::kDoubleParam) {
      return absl::InvalidArgumentError("parameters.tile_overlap: must be a double_param");
    }
    params.tile_overlap = it->second.double_param();
  }
  return params;
}

void FillInferResponse(const std::vector<inference::SegmentResult>& results,
                       const std::vector<std::string>& outputs, oip::ModelInferResponse* out) {
  const int64_t n = static_cast<int64_t>(results.size());
  const int64_t h = results.empty() ? 0 : results[0].mask.height;
  const int64_t w = results.empty() ? 0 : results[0].mask.width;
  for (const std::string& name : outputs) {
    auto* tensor = out->add_outputs();
    tensor->set_name(name);
    std::string* raw = out->add_raw_output_contents();
    if (name == kOipMask) {
      tensor->set_datatype("UINT8");
      for (int64_t d : {n, h, w}) tensor->add_shape(d);
      raw->reserve(static_cast<size_t>(n * h * w));
      for (const auto& result : results)
        raw->append(result.mask.ids.begin(), result.mask.ids.end());
    } else {
      const int64_t k = results.empty() ? 0 : results[0].classes;
      tensor->set_datatype("FP32");
      for (int64_t d : {n, k, h, w}) tensor->add_shape(d);
      raw->reserve(static_cast<size_t>(n * k * h * w) * sizeof(float));
      for (const auto& result : results) {
        raw->append(reinterpret_cast<const char*>(result.probabilities.data()),
                    result.probabilities.size() * sizeof(float));
      }
    }
  }
}

void FillTensorMetadata(const model::UnetConfig& config, oip::ModelMetadataResponse* out) {
  const model::UnetConfig full = model::WithDefaultNormalisation(config);
  auto* input = out->add_inputs();
  input->set_name(kOipInput);
  input->set_datatype("UINT8");
  for (int64_t d : {int64_t{-1}, int64_t{-1}, int64_t{-1}, int64_t{full.in_channels}})
    input->add_shape(d);
  auto& params = *input->mutable_parameters();
  SetString(params, "datatypes", "UINT8,FP32");
  SetString(params, "layout", "NHWC");
  SetString(params, "scale", "UINT8 is divided by 255; FP32 is taken as already on [0, 1]");
  SetString(params, "normalisation", "(x - mean) / std per channel, after scaling");
  SetString(params, "mean", Joined(full.mean));
  SetString(params, "std", Joined(full.std));
  SetString(params, "channels",
            "1..4 accepted: gray is replicated, RGB(A) to gray is BT.601 luma, RGBA drops alpha");

  auto* mask = out->add_outputs();
  mask->set_name(kOipMask);
  mask->set_datatype("UINT8");
  for (int64_t d : {-1, -1, -1}) mask->add_shape(d);
  (*mask->mutable_parameters())["classes"].set_int64_param(full.classes);

  auto* probabilities = out->add_outputs();
  probabilities->set_name(kOipProbabilities);
  probabilities->set_datatype("FP32");
  for (int64_t d : {int64_t{-1}, int64_t{full.classes}, int64_t{-1}, int64_t{-1}})
    probabilities->add_shape(d);
  (*probabilities->mutable_parameters())["only_when_requested"].set_bool_param(true);
}

void FillModelConfig(const model::UnetConfig& config, const std::string& name,
                     const OipLimits& limits, const OipBatching& batching, oip::ModelConfig* out) {
  const model::UnetConfig full = model::WithDefaultNormalisation(config);
  out->set_name(name);
  out->set_platform("segserve_unet");
  out->set_backend("segserve");
  out->set_max_batch_size(limits.max_batch);

  auto* input = out->add_input();
  input->set_name(kOipInput);
  input->set_data_type(oip::TYPE_UINT8);
  input->set_format(oip::ModelInput::FORMAT_NHWC);
  for (int64_t d : {int64_t{-1}, int64_t{-1}, int64_t{full.in_channels}}) input->add_dims(d);

  auto* mask = out->add_output();
  mask->set_name(kOipMask);
  mask->set_data_type(oip::TYPE_UINT8);
  for (int64_t d : {-1, -1}) mask->add_dims(d);
  auto* probabilities = out->add_output();
  probabilities->set_name(kOipProbabilities);
  probabilities->set_data_type(oip::TYPE_FP32);
  for (int64_t d : {int64_t{full.classes}, int64_t{-1}, int64_t{-1}}) probabilities->add_dims(d);

  auto* dynamic = out->mutable_dynamic_batching();
  if (batching.preferred_batch_size > 0) {
    dynamic->add_preferred_batch_size(batching.preferred_batch_size);
  }
  dynamic->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(std::max<int64_t>(0, batching.max_queue_delay_us)));

  auto& params = *out->mutable_parameters();
  params["datatypes"].set_string_value("UINT8,FP32");
  params["scale"].set_string_value("UINT8 is divided by 255; FP32 is taken as already on [0, 1]");
  params["normalisation"].set_string_value("(x - mean) / std per channel, after scaling");
  params["mean"].set_string_value(Joined(full.mean));
  params["std"].set_string_value(Joined(full.std));
  params["classes"].set_string_value(absl::StrCat(full.classes));
  params["probabilities"].set_string_value("only when requested in ModelInfer outputs");
}

absl::StatusOr<int64_t> ParseModelVersion(const std::string& version, const std::string& field) {
  if (version.empty()) return 0;
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(version, &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must be a registry version (a positive integer) or empty, got '", version, "'"));
  }
  return parsed;
}

}  // namespace segserve::api
