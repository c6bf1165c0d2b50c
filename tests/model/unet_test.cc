#include "server/model/unet.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/model/test_util.h"

namespace segserve::model {
namespace {

UnetConfig Config(EncoderKind encoder, int level, int in_channels, int classes) {
  UnetConfig c;
  c.encoder = encoder;
  c.skip_prune_level = level;
  c.in_channels = in_channels;
  c.classes = classes;
  return c;
}

TEST(UnetTest, OutputShapeAndDtypeForAnySize) {
  Unet model(Config(EncoderKind::kResNet18, 1, 3, 2));
  model->eval();
  torch::InferenceMode guard;
  const std::vector<std::pair<int, int>> sizes = {{64, 64}, {100, 77}, {33, 250}, {5, 7}, {1, 1}};
  for (const auto& [h, w] : sizes) {
    torch::Tensor y = model->forward(torch::randn({2, 3, h, w}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 2, h, w})) << h << "x" << w;
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
}

TEST(UnetTest, EveryEncoderLevelAndChannelCountRuns) {
  torch::InferenceMode guard;
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    for (int level = 0; level <= 4; ++level) {
      const int in_channels = 1 + level % 4;
      Unet model(Config(encoder, level, in_channels, 2 + level));
      model->eval();
      torch::Tensor y = model->forward(torch::randn({1, in_channels, 64, 64}));
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 2 + level, 64, 64}));
    }
  }
}

TEST(UnetTest, TapsAreNamedAndCeilSized) {
  Unet model(Config(EncoderKind::kResNet18, 1, 3, 2));
  model->eval();
  torch::InferenceMode guard;
  UnetOutput out = model->ForwardWithTaps(torch::randn({2, 3, 100, 77}));
  ASSERT_EQ(out.taps.size(), 10u);
  const std::vector<int64_t> channels = {64, 64, 128, 256, 512, 256, 128, 64, 32, 16};
  for (size_t i = 0; i < out.taps.size(); ++i) {
    const int stride = UnetImpl::TapStrides()[i];
    EXPECT_EQ(out.taps[i].name, UnetImpl::TapNames()[i]);
    EXPECT_EQ(out.taps[i].tensor.sizes(),
              (std::vector<int64_t>{2, channels[i], (100 + stride - 1) / stride,
                                    (77 + stride - 1) / stride}))
        << out.taps[i].name;
  }
  EXPECT_EQ(out.taps[0].name, "encoder.stem");
  EXPECT_EQ(out.taps[9].name, "decoder.block4");
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 2, 100, 77}));
}

TEST(UnetTest, TapsDoNotChangeLogits) {
  Unet model(Config(EncoderKind::kResNet34, 2, 1, 3));
  model->eval();
  torch::InferenceMode guard;
  torch::Tensor x = torch::randn({1, 1, 64, 64});
  EXPECT_TRUE(torch::equal(model->forward(x), model->ForwardWithTaps(x).logits));
}

TEST(UnetTest, BatchNormFoldingChangesOutputsByLessThan1e4) {
  for (EncoderKind encoder : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    Unet model(Config(encoder, 1, 3, 2));
    testing::RandomiseBatchNorm(model, 7);
    model->eval();
    Unet folded = testing::CopyOf(model);
    folded->eval();
    folded->FoldBatchNorm();
    EXPECT_TRUE(folded->folded());
    torch::InferenceMode guard;
    torch::Tensor x = torch::randn({2, 3, 64, 64});
    torch::Tensor reference = model->ForwardWithTaps(x).logits;
    UnetOutput out = folded->ForwardWithTaps(x);
    const float diff = (reference - out.logits).abs().max().item<float>();
    EXPECT_LT(diff, 1e-4) << EncoderName(encoder);
    EXPECT_GT(reference.abs().max().item<float>(), 1e-2);  // not trivially zero
  }
}

TEST(UnetTest, FoldingTwiceIsHarmless) {
  Unet model(UnetConfig{});
  model->eval();
  model->FoldBatchNorm();
  model->FoldBatchNorm();
  torch::InferenceMode guard;
  EXPECT_EQ(model->forward(torch::randn({1, 3, 32, 32})).size(1), 2);
}

}  // namespace
}  // namespace segserve::model
