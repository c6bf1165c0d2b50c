// AutocastGuard: scoped mixed precision that means the same on LibTorch 1.13 and 2.x.
#include "server/model/autocast.h"

#include "gtest/gtest.h"

namespace segserve::model {
namespace {

torch::Tensor Product() { return torch::mm(torch::ones({4, 8}), torch::ones({8, 2})); }

TEST(AutocastGuardTest, ProductsRunInBfloat16InsideTheScopeOnly) {
  EXPECT_EQ(Product().scalar_type(), torch::kFloat32);
  {
    AutocastGuard guard(torch::Device("cpu"), torch::kBFloat16);
    const torch::Tensor y = Product();
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(y[0][0].item<float>(), 8.0f);
  }
  EXPECT_EQ(Product().scalar_type(), torch::kFloat32);
}

TEST(AutocastGuardTest, NestedScopesRestoreTheOuterState) {
  AutocastGuard outer(torch::Device("cpu"), torch::kBFloat16);
  {
    AutocastGuard inner(torch::Device("cpu"), torch::kBFloat16);
    EXPECT_EQ(Product().scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(Product().scalar_type(), torch::kBFloat16);
}

TEST(AutocastGuardTest, GradientsReachFloat32Weights) {
  torch::Tensor w = torch::ones({8, 2}, torch::requires_grad());
  {
    AutocastGuard guard(torch::Device("cpu"), torch::kBFloat16);
    torch::mm(torch::ones({4, 8}), w).sum().backward();
  }
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat32);
  EXPECT_EQ(w.grad()[0][0].item<float>(), 4.0f);
}

}  // namespace
}  // namespace segserve::model
