#include "server/model/servable_model.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/checkpoint.h"
#include "tests/model/test_util.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;

Unet RandomModel(int level = 1) {
  UnetConfig config;
  config.skip_prune_level = level;
  Unet model(config);
  testing::RandomiseBatchNorm(model, 5);
  model->eval();
  return model;
}

torch::Tensor Reference(Unet& model, const torch::Tensor& x) {
  torch::InferenceMode guard;
  return model->forward(x);
}

TEST(ServableModelTest, ServingVariantsMatchEagerFloat32) {
  Unet eager = RandomModel();
  const torch::Tensor x = torch::randn({2, 3, 64, 96});
  const torch::Tensor expected = Reference(eager, x);
  for (bool fold : {false, true}) {
    for (bool channels_last : {false, true}) {
      ServeOptions options;
      options.fold_bn = fold;
      options.channels_last = channels_last;
      options.intra_op_threads = 2;
      auto servable = ServableModel::Create(testing::CopyOf(eager), options);
      ASSERT_TRUE(servable.ok()) << servable.status();
      auto logits = (*servable)->Forward(x);
      ASSERT_TRUE(logits.ok()) << logits.status();
      EXPECT_TRUE(logits->is_contiguous());
      EXPECT_EQ(logits->scalar_type(), torch::kFloat32);
      EXPECT_LT((*logits - expected).abs().max().item<float>(), 1e-4)
          << "fold=" << fold << " channels_last=" << channels_last;
    }
  }
}

TEST(ServableModelTest, Bfloat16GivesFloatLogitsCloseToFloat32) {
  Unet eager = RandomModel();
  const torch::Tensor x = torch::randn({1, 3, 64, 64});
  const torch::Tensor expected = Reference(eager, x);
  ServeOptions options;
  options.bfloat16 = true;
  auto servable = ServableModel::Create(testing::CopyOf(eager), options);
  ASSERT_TRUE(servable.ok()) << servable.status();
  auto out = (*servable)->ForwardWithTaps(x);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->logits.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out->logits.sizes(), expected.sizes());
  EXPECT_EQ(out->taps[0].tensor.scalar_type(), torch::kFloat32);
  const float scale = expected.abs().max().item<float>();
  EXPECT_LT((out->logits - expected).abs().max().item<float>(), 0.1 * scale + 0.05);
}

TEST(ServableModelTest, InputIsValidatedBeforeTorch) {
  auto servable = ServableModel::Create(RandomModel(), ServeOptions{});
  ASSERT_TRUE(servable.ok());
  ServableModel& model = **servable;
  struct Case {
    torch::Tensor input;
    const char* message;
  };
  const Case cases[] = {
      {torch::Tensor(), "input: tensor is undefined"},
      {torch::zeros({3, 64, 64}), "input: must have rank 4"},
      {torch::zeros({1, 1, 64, 64}), "input: must have in_channels = 3 channels, got 1"},
      {torch::zeros({1, 3, 64, 64}, torch::kUInt8), "input: dtype must be float32"},
      {torch::zeros({1, 3, 0, 64}), "input: batch, height and width must be >= 1"},
  };
  for (const Case& c : cases) {
    auto out = model.Forward(c.input);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(out.status().message(), HasSubstr(c.message));
  }
}

TEST(ServableModelTest, OddSizesAndTaps) {
  ServeOptions options;
  auto servable = ServableModel::Create(RandomModel(0), options);
  ASSERT_TRUE(servable.ok());
  for (auto [h, w] : {std::pair<int, int>{100, 77}, {33, 250}, {64, 64}}) {
    auto out = (*servable)->ForwardWithTaps(torch::randn({1, 3, h, w}));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->logits.sizes(), (std::vector<int64_t>{1, 2, h, w}));
    EXPECT_EQ(out->taps.size(), 10u);
    EXPECT_EQ(out->taps[4].tensor.size(2), (h + 31) / 32);
  }
}

TEST(ServableModelTest, BadOptionsAreRefused) {
  ServeOptions options;
  options.device = "tpu";
  EXPECT_EQ(ServableModel::Create(RandomModel(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.device = "cuda:7";
  EXPECT_EQ(ServableModel::Create(RandomModel(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);
  options = ServeOptions{};
  options.intra_op_threads = -1;
  EXPECT_EQ(ServableModel::Create(RandomModel(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ServableModel::Create(Unet(nullptr), ServeOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ServableModelTest, CreatesFromCheckpointWithMetadata) {
  Unet model = RandomModel();
  const torch::Tensor x = torch::randn({1, 3, 64, 64});
  const torch::Tensor expected = Reference(model, x);
  const std::string path = testing::MakeTempDir() + "/m.segckpt";
  ASSERT_TRUE(SaveCheckpoint(path, model, {{"note", "test"}}).ok());
  auto servable = ServableModel::CreateFromCheckpoint(path, ServeOptions{});
  ASSERT_TRUE(servable.ok()) << servable.status();
  EXPECT_EQ((*servable)->metadata()["note"], "test");
  EXPECT_EQ((*servable)->config().skip_prune_level, 1);
  auto logits = (*servable)->Forward(x);
  ASSERT_TRUE(logits.ok());
  EXPECT_LT((*logits - expected).abs().max().item<float>(), 1e-4);
}

}  // namespace
}  // namespace segserve::model
