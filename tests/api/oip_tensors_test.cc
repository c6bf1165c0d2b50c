#include "server/api/oip_tensors.h"

#include <cstring>

#include "gtest/gtest.h"

namespace segserve::api {
namespace {

oip::ModelInferRequest Request(const std::string& datatype, std::vector<int64_t> shape) {
  oip::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype(datatype);
  for (int64_t d : shape) input->add_shape(d);
  return request;
}

TEST(OipTensors, RawUint8BatchIsSplitIntoImagesInOrder) {
  auto request = Request("UINT8", {2, 2, 3, 1});
  request.add_raw_input_contents(std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"));
  auto images = ImagesFromInferRequest(request, {});
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].height, 2);
  EXPECT_EQ((*images)[0].width, 3);
  EXPECT_EQ((*images)[0].channels, 1);
  EXPECT_EQ((*images)[0].bytes, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ((*images)[1].bytes, (std::vector<uint8_t>{7, 8, 9, 10, 11, 12}));
}

TEST(OipTensors, TypedFp32IsTheSameAsRawFp32) {
  auto typed = Request("FP32", {1, 1, 2, 1});
  typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(0.25f);
  typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(0.75f);
  auto raw = Request("FP32", {1, 1, 2, 1});
  const float values[2] = {0.25f, 0.75f};
  raw.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  auto a = ImagesFromInferRequest(typed, {});
  auto b = ImagesFromInferRequest(raw, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0], (*b)[0]);
  EXPECT_EQ((*a)[0].depth, data::PixelDepth::kF32);
}

TEST(OipTensors, LimitsNameTheTensorAndTheLimit) {
  OipLimits limits;
  limits.max_batch = 2;
  limits.max_image_pixels = 100;
  auto big_batch = Request("UINT8", {3, 1, 1, 1});
  EXPECT_EQ(ImagesFromInferRequest(big_batch, limits).status().message(),
            "image: shape[0] (batch) must be 1..2, got 3");
  auto big_image = Request("UINT8", {1, 11, 10, 1});
  EXPECT_EQ(ImagesFromInferRequest(big_image, limits).status().message(),
            "image: 11x10 pixels per image exceeds the limit of 100 (--max_image_pixels)");
  // An overflowing product is caught before anything is allocated.
  auto huge = Request("UINT8", {1, int64_t{1} << 40, int64_t{1} << 40, 1});
  EXPECT_EQ(ImagesFromInferRequest(huge, limits).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OipTensors, AShapeThatAsksForGigabytesIsCheckedAgainstTheDataFirst) {
  // 64 x 4096 x 4096 x 4 FP32 would be 17 GB; the 4 bytes sent decide.
  auto request = Request("FP32", {64, 4096, 4096, 4});
  request.add_raw_input_contents(std::string(4, '\0'));
  OipLimits limits;
  limits.max_batch = 64;
  auto images = ImagesFromInferRequest(request, limits);
  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(images.status().message().find("image: raw_input_contents[0] has 4 bytes"),
            std::string::npos)
      << images.status();
}

TEST(OipTensors, OutputsDefaultToTheMaskAndKeepTheRequestedOrder) {
  oip::ModelInferRequest request;
  EXPECT_EQ(*RequestedOutputs(request), std::vector<std::string>{"mask"});
  request.add_outputs()->set_name("probabilities");
  request.add_outputs()->set_name("mask");
  EXPECT_EQ(*RequestedOutputs(request), (std::vector<std::string>{"probabilities", "mask"}));
  auto params = ParamsFromInferRequest(request, *RequestedOutputs(request));
  ASSERT_TRUE(params.ok());
  EXPECT_TRUE(params->return_probabilities);
  request.add_outputs()->set_name("mask");
  EXPECT_EQ(RequestedOutputs(request).status().message(),
            "outputs[2].name: 'mask' is requested twice");
}

TEST(OipTensors, ParametersOfTheWrongKindAreRefused) {
  oip::ModelInferRequest request;
  (*request.mutable_parameters())["tile_size"].set_string_param("512");
  EXPECT_EQ(ParamsFromInferRequest(request, {"mask"}).status().message(),
            "parameters.tile_size: must be an int64_param");
  request.clear_parameters();
  (*request.mutable_parameters())["priority"].set_uint64_param(1);  // tritonclient's: ignored
  (*request.mutable_parameters())["tile_size"].set_int64_param(256);
  auto params = ParamsFromInferRequest(request, {"mask"});
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->tile_size, 256);
}

TEST(OipTensors, ModelVersionIsEmptyOrAPositiveInteger) {
  EXPECT_EQ(*ParseModelVersion("", "model_version"), 0);
  EXPECT_EQ(*ParseModelVersion("3", "model_version"), 3);
  for (const char* bad : {"0", "-1", "v2", "1.5"}) {
    auto parsed = ParseModelVersion(bad, "model_version");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("model_version"), std::string::npos);
  }
}

TEST(OipTensors, ResponsesConcatenateTheBatchInRawOutputContents) {
  std::vector<inference::SegmentResult> results(2);
  for (int i = 0; i < 2; ++i) {
    results[i].mask = data::Mask::Create(1, 2);
    results[i].mask.ids = {static_cast<uint8_t>(i), 1};
    results[i].classes = 2;
    results[i].probabilities = {0.5f, 0.25f, 0.5f, 0.75f};
  }
  oip::ModelInferResponse response;
  FillInferResponse(results, {"mask", "probabilities"}, &response);
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{2, 1, 2}));
  EXPECT_EQ(response.raw_output_contents(0), std::string("\x00\x01\x01\x01", 4));
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(1).shape().begin(), response.outputs(1).shape().end()),
      (std::vector<int64_t>{2, 2, 1, 2}));
  EXPECT_EQ(response.raw_output_contents(1).size(), 2 * 4 * sizeof(float));
}

}  // namespace
}  // namespace segserve::api
