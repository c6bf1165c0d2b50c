// Dynamic loss scaling (fp16 training): unscaling, skipped steps on inf/NaN, backoff and
// growth of the scale. Device-independent, so it runs on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "server/training/trainer_internal.h"

namespace segserve::training::internal {
namespace {

torch::Tensor ParamWithGrad(std::vector<float> grad) {
  torch::Tensor p = torch::zeros({static_cast<int64_t>(grad.size())}).set_requires_grad(true);
  p.mutable_grad() = torch::tensor(grad);
  return p;
}

TEST(LossScalerTest, UnscalesFiniteGradientsAndKeepsTheStep) {
  LossScaler scaler(1024.0, /*growth_interval=*/3);
  EXPECT_DOUBLE_EQ(scaler.Scale(torch::tensor(2.0f)).item<double>(), 2048.0);
  torch::Tensor p = ParamWithGrad({1024.0f, -512.0f});
  EXPECT_TRUE(scaler.UnscaleAndUpdate({p}));
  EXPECT_TRUE(torch::allclose(p.grad(), torch::tensor({1.0f, -0.5f})));
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024.0);
  EXPECT_EQ(scaler.skipped_steps(), 0);
}

TEST(LossScalerTest, InfOrNanSkipsTheStepAndHalvesTheScale) {
  LossScaler scaler(1024.0, 3);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(scaler.UnscaleAndUpdate({ParamWithGrad({1.0f}), ParamWithGrad({inf})}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 512.0);
  EXPECT_FALSE(scaler.UnscaleAndUpdate({ParamWithGrad({std::nanf("")})}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 256.0);
  EXPECT_EQ(scaler.skipped_steps(), 2);
}

TEST(LossScalerTest, GrowsAfterEnoughGoodStepsInARow) {
  LossScaler scaler(8.0, 3);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(scaler.UnscaleAndUpdate({ParamWithGrad({1.0f})}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 8.0);
  // A bad step resets the run of good ones.
  ASSERT_FALSE(scaler.UnscaleAndUpdate({ParamWithGrad({std::nanf("")})}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 4.0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scaler.UnscaleAndUpdate({ParamWithGrad({1.0f})}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 8.0);
}

TEST(LossScalerTest, ParametersWithoutGradientsAreIgnored) {
  LossScaler scaler(2.0, 100);
  torch::Tensor frozen = torch::zeros({2}).set_requires_grad(true);
  EXPECT_TRUE(scaler.UnscaleAndUpdate({frozen}));
}

}  // namespace
}  // namespace segserve::training::internal
