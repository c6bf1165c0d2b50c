#include "server/model/state_dict.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/model/test_util.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Writes `sd` the way torch.save does (LibTorch's pickle_save writes the same zip format).
std::string SaveDict(const StateDict& sd, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [k, v] : sd) dict.insert(k, v);
  const std::vector<char> bytes = torch::pickle_save(dict);
  EXPECT_TRUE(common::WriteFileAtomically(path, std::string(bytes.begin(), bytes.end())).ok());
  return path;
}

TEST(StateDictTest, RoundTripThroughPickleFile) {
  Unet source(UnetConfig{});
  testing::RandomiseBatchNorm(source, 1);
  const std::string path = SaveDict(GetStateDict(*source), testing::MakeTempDir() + "/sd.pt");
  Unet target(UnetConfig{});
  auto report = LoadStateDictFile(target, path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded.size(), 182u);
  const StateDict a = GetStateDict(*source);
  const StateDict b = GetStateDict(*target);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));
}

TEST(StateDictTest, WrongKeysAreRefusedWithTheirNames) {
  Unet source(UnetConfig{});
  StateDict sd = GetStateDict(*source);
  for (auto& [key, tensor] : sd) {
    if (key == "decoder.blocks.0.conv1.0.weight") key = "decoder.blocks.0.conv1.weight";
    if (key == "segmentation_head.0.weight") tensor = torch::zeros({5, 16, 3, 3});
  }
  sd.emplace_back("extra.thing", torch::zeros({1}));
  Unet target(UnetConfig{});
  const torch::Tensor before = target->named_parameters()["encoder.conv1.weight"].clone();
  auto report = LoadStateDict(target, sd);
  ASSERT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(report.status().message());
  EXPECT_THAT(message, HasSubstr("missing key(s): decoder.blocks.0.conv1.0.weight"));
  EXPECT_THAT(message, HasSubstr("unexpected key(s): decoder.blocks.0.conv1.weight, extra.thing"));
  EXPECT_THAT(message,
              HasSubstr("segmentation_head.0.weight (model [2, 16, 3, 3], file [5, 16, 3, 3])"));
  // Nothing is half-loaded on error.
  EXPECT_TRUE(torch::equal(before, target->named_parameters()["encoder.conv1.weight"]));
}

TEST(StateDictTest, LongKeyListsAreTruncated) {
  Unet target(UnetConfig{});
  auto report = LoadStateDict(target, {});
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("182 missing key(s)"));
  EXPECT_THAT(report.status().message(), HasSubstr("... and 172 more"));
}

TEST(StateDictTest, NonStrictLoadsEncoderAlone) {
  Unet source(UnetConfig{});
  StateDict encoder_only;
  for (const auto& [key, tensor] : GetStateDict(*source)) {
    if (key.rfind("encoder.", 0) == 0) encoder_only.emplace_back(key, tensor);
  }
  Unet target(UnetConfig{});
  EXPECT_FALSE(LoadStateDict(target, encoder_only).ok());
  LoadOptions options;
  options.strict = false;
  auto report = LoadStateDict(target, encoder_only, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded.size(), 120u);
  EXPECT_EQ(report->missing.size(), 62u);
  EXPECT_TRUE(torch::equal(source->named_parameters()["encoder.layer4.1.conv2.weight"],
                           target->named_parameters()["encoder.layer4.1.conv2.weight"]));
}

TEST(StateDictTest, NonStrictStillRefusesMisShapedKeys) {
  Unet target(UnetConfig{});
  LoadOptions options;
  options.strict = false;
  auto report =
      LoadStateDict(target, {{"encoder.conv1.weight", torch::zeros({64, 1, 7, 7})}}, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(report.status().message(), HasSubstr("encoder.conv1.weight"));
}

TEST(StateDictTest, TorchvisionLayoutLoadsIntoEncoder) {
  Unet source(UnetConfig{});
  StateDict torchvision;
  for (const auto& [key, tensor] : GetStateDict(*source)) {
    if (key.rfind("encoder.", 0) == 0) torchvision.emplace_back(key.substr(8), tensor);
  }
  torchvision.emplace_back("fc.weight", torch::zeros({1000, 512}));
  torchvision.emplace_back("fc.bias", torch::zeros({1000}));
  const std::string path = SaveDict(torchvision, testing::MakeTempDir() + "/resnet18.pth");
  Unet target(UnetConfig{});
  auto report = LoadTorchvisionEncoderFile(target, path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->loaded.size(), 120u);
  EXPECT_TRUE(torch::equal(source->named_buffers()["encoder.bn1.running_var"],
                           target->named_buffers()["encoder.bn1.running_var"]));
  // A resnet18 file does not fill a resnet34 encoder.
  UnetConfig r34;
  r34.encoder = EncoderKind::kResNet34;
  Unet wrong(r34);
  auto refused = LoadTorchvisionEncoderFile(wrong, path);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("missing key(s): layer1.2.conv1.weight"));
}

TEST(StateDictTest, GarbageFileIsInvalidArgument) {
  const std::string path = testing::MakeTempDir() + "/garbage.pt";
  ASSERT_TRUE(common::WriteFileAtomically(path, "definitely not a zip").ok());
  auto sd = ReadStateDictFile(path);
  EXPECT_EQ(sd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sd.status().message(), HasSubstr("garbage.pt"));
  EXPECT_THAT(sd.status().message(), Not(HasSubstr("\n")));
  EXPECT_EQ(ReadStateDictFile(path + ".absent").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace segserve::model
