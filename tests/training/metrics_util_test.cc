// File: tests/training/metrics_util_test.cc — IoU from a confusion matrix; reference stats JSON.
#include "server/training/metrics_util.h"

#include <gtest/gtest.h>

namespace segserve::training {
namespace {

TEST(ConfusionMatrixTest, PerClassAndMeanForegroundIoU) {
  ConfusionMatrix cm(3);
  const uint8_t truth[] = {0, 0, 1, 1, 1, 2};
  const uint8_t pred[] = {0, 1, 1, 1, 0, 0};
  cm.Add(truth, pred, 6);
  EXPECT_DOUBLE_EQ(cm.ClassIoU(1), 2.0 / 4.0);  // tp 2, fp 1, fn 1
  EXPECT_DOUBLE_EQ(cm.ClassIoU(2), 0.0);
  EXPECT_DOUBLE_EQ(cm.MeanForegroundIoU(), 0.25);
}

TEST(ConfusionMatrixTest, AbsentClassesAreLeftOutOfTheMean) {
  ConfusionMatrix cm(3);
  const uint8_t truth[] = {0, 1};
  const uint8_t pred[] = {0, 1};
  cm.Add(truth, pred, 2);
  EXPECT_EQ(cm.ClassIoU(2), -1.0);
  EXPECT_DOUBLE_EQ(cm.MeanForegroundIoU(), 1.0);
}

TEST(ReferenceStatsTest, MeanStdMinMaxAndHistogram) {
  LayerReference layer{"encoder.stem", 2, {{0.f, 1.f}, {1.f, 1.f}, {2.f, 1.f}, {3.f, 1.f}}};
  nlohmann::json j = ReferenceStatsJson({layer}, 4);
  ASSERT_EQ(j["layers"].size(), 1u);
  const auto& l = j["layers"][0];
  EXPECT_EQ(j["images"], 4);
  EXPECT_FLOAT_EQ(l["mean"][0].get<float>(), 1.5f);
  EXPECT_NEAR(l["std"][0].get<float>(), 1.118034f, 1e-5);
  EXPECT_FLOAT_EQ(l["min"][0].get<float>(), 0.f);
  EXPECT_FLOAT_EQ(l["max"][0].get<float>(), 3.f);
  EXPECT_EQ(l["hist"][0], nlohmann::json({1, 1, 1, 1}));
  EXPECT_EQ(l["hist"][1], nlohmann::json({4, 0, 0, 0}));  // constant channel: one bin
}

}  // namespace
}  // namespace segserve::training
