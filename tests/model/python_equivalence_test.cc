// Numerical equivalence with the Python reference (tests/model/reference_unet.py, smp's
// architecture): its torch.save'd state dicts load into our Unet and give the same logits
// and taps. Skips when /usr/bin/python3 cannot import torch.
#include <algorithm>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/servable_model.h"
#include "server/model/state_dict.h"
#include "tests/model/test_util.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;

class PythonEquivalenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    dir_ = testing::PythonReferenceDir(&why);
    if (dir_.empty()) GTEST_SKIP() << "Python reference unavailable: " << why;
  }

  UnetConfig ReadConfig(const std::string& stem) {
    std::ifstream in(dir_ + "/" + stem + ".config");
    std::string encoder;
    UnetConfig config;
    in >> encoder >> config.skip_prune_level >> config.in_channels >> config.classes;
    config.encoder = *ParseEncoderKind(encoder);
    return config;
  }

  std::map<std::string, torch::Tensor> ReadIo(const std::string& stem) {
    auto sd = ReadStateDictFile(dir_ + "/" + stem + ".io.pt");
    EXPECT_TRUE(sd.ok()) << sd.status();
    std::map<std::string, torch::Tensor> io;
    if (sd.ok()) {
      for (auto& [k, v] : *sd) io[k] = v;
    }
    return io;
  }

  std::string dir_;
};

// reference_unet.py's cases: 0-3 at sizes divisible by 32, 4-6 at other sizes (100x76,
// 37x53, 5x7), where smp >= 0.5 upsamples to each encoder level's size instead of padding.
constexpr int kCases = 7;

TEST_F(PythonEquivalenceTest, SmpStateDictsGiveTheSameLogitsAndTaps) {
  for (int i = 0; i < kCases; ++i) {
    const std::string stem = "case" + std::to_string(i);
    SCOPED_TRACE(stem);
    Unet model(ReadConfig(stem));
    auto report = LoadStateDictFile(model, dir_ + "/" + stem + ".state_dict.pt");
    ASSERT_TRUE(report.ok()) << report.status();
    model->eval();
    auto io = ReadIo(stem);
    torch::InferenceMode guard;
    UnetOutput out = model->ForwardWithTaps(io["input"]);
    const torch::Tensor& expected = io["output"];
    ASSERT_EQ(out.logits.sizes(), expected.sizes());
    EXPECT_LT((out.logits - expected).abs().max().item<float>(), 1e-4);
    for (const NamedTensor& tap : out.taps) {
      const torch::Tensor& ref = io["tap." + tap.name];
      ASSERT_EQ(tap.tensor.sizes(), ref.sizes()) << tap.name;
      EXPECT_LT((tap.tensor - ref).abs().max().item<float>(), 1e-4) << tap.name;
    }
  }
}

// Folding and channels-last reorder float32 sums: the logits (|x| up to ~20 here) may move by
// float32 rounding, so this compares relative to the logits' scale, and the argmax exactly.
TEST_F(PythonEquivalenceTest, ServingPathMatchesPython) {
  for (int i = 0; i < kCases; ++i) {
    const std::string stem = "case" + std::to_string(i);
    for (bool fold : {false, true}) {
      for (bool channels_last : {false, true}) {
        // The odd sizes (cases 4-6) in the production setting only (folded, channels-last).
        if (i >= 4 && !(fold && channels_last)) continue;
        SCOPED_TRACE(stem + " fold=" + std::to_string(fold) +
                     " channels_last=" + std::to_string(channels_last));
        Unet model(ReadConfig(stem));
        ASSERT_TRUE(LoadStateDictFile(model, dir_ + "/" + stem + ".state_dict.pt").ok());
        ServeOptions options;
        options.fold_bn = fold;
        options.channels_last = channels_last;
        auto servable = ServableModel::Create(model, options);
        ASSERT_TRUE(servable.ok()) << servable.status();
        auto io = ReadIo(stem);
        auto logits = (*servable)->Forward(io["input"]);
        ASSERT_TRUE(logits.ok()) << logits.status();
        const float scale = std::max(1.0f, io["output"].abs().max().item<float>());
        const float diff = (*logits - io["output"]).abs().max().item<float>();
        EXPECT_LT(diff / scale, 1e-4) << "max abs diff " << diff << " at scale " << scale;
        const float agreement =
            logits->argmax(1).eq(io["output"].argmax(1)).to(torch::kFloat32).mean().item<float>();
        EXPECT_GT(agreement, 0.999);
      }
    }
  }
}

TEST_F(PythonEquivalenceTest, TorchvisionResNetLoadsIntoEncoderOnly) {
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    UnetConfig config;
    config.encoder = encoder;
    Unet model(config);
    const std::string path = dir_ + "/torchvision_" + std::string(EncoderName(encoder)) + ".pt";
    auto report = LoadTorchvisionEncoderFile(model, path);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->missing.size(), 62u);  // the decoder and head
    auto tv = ReadStateDictFile(path);
    ASSERT_TRUE(tv.ok());
    for (const auto& [key, tensor] : *tv) {
      if (key == "layer3.1.conv2.weight") {
        EXPECT_TRUE(torch::equal(tensor, model->named_parameters()["encoder." + key]));
      }
    }
  }
  // The resnet34 file into a resnet18 model: its extra blocks are named.
  Unet r18(UnetConfig{});
  auto refused = LoadTorchvisionEncoderFile(r18, dir_ + "/torchvision_resnet34.pt");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("unexpected key(s): layer1.2.conv1.weight"));
}

TEST_F(PythonEquivalenceTest, SmpStateDictRefusedByWrongArchitecture) {
  UnetConfig config = ReadConfig("case0");  // resnet18 L0
  config.skip_prune_level = 1;
  Unet model(config);
  auto report = LoadStateDictFile(model, dir_ + "/case0.state_dict.pt");
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      report.status().message(),
      HasSubstr("decoder.blocks.3.conv1.0.weight (model [32, 64, 3, 3], file [32, 128, 3, 3])"));
}

TEST_F(PythonEquivalenceTest, NonStateDictFilesAreRefusedClearly) {
  auto checkpoint = ReadStateDictFile(dir_ + "/training_checkpoint.pt");
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checkpoint.status().message(), HasSubstr("\"epoch\" is not a tensor"));
  auto module = ReadStateDictFile(dir_ + "/whole_module.pt");
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(module.status().message(), HasSubstr("unsupported Python"));
}

}  // namespace
}  // namespace segserve::model
