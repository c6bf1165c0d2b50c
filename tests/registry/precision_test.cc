// The serving-precision policy (--precision fp32|bf16|auto) on version metadata.
#include "server/registry/precision.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve::registry {
namespace {

using ::testing::HasSubstr;

nlohmann::json Metrics(double fp32, double bf16) {
  return {{"metrics", {{"test_iou", fp32}, {"test_iou_bf16", bf16}, {"val_iou", 0.5}}}};
}

TEST(Precision, ParsesTheThreeModesAndNamesTheFlagOtherwise) {
  EXPECT_EQ(*ParsePrecisionMode("fp32", "--precision"), PrecisionMode::kFp32);
  EXPECT_EQ(*ParsePrecisionMode("bf16", "--precision"), PrecisionMode::kBf16);
  EXPECT_EQ(*ParsePrecisionMode("auto", "--precision"), PrecisionMode::kAuto);
  absl::StatusOr<PrecisionMode> bad = ParsePrecisionMode("fp16", "--precision");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--precision: must be fp32, bf16 or auto"));
  for (PrecisionMode m : {PrecisionMode::kFp32, PrecisionMode::kBf16, PrecisionMode::kAuto}) {
    EXPECT_EQ(*ParsePrecisionMode(PrecisionModeName(m), "f"), m);
  }
}

TEST(Precision, FixedModesIgnoreTheMetadata) {
  EXPECT_FALSE(ChoosePrecision({PrecisionMode::kFp32}, Metrics(0.9, 0.9)).bfloat16);
  EXPECT_TRUE(ChoosePrecision({PrecisionMode::kBf16}, nlohmann::json()).bfloat16);
  EXPECT_TRUE(ChoosePrecision({PrecisionMode::kBf16}, Metrics(0.9, 0.1)).bfloat16);
}

TEST(Precision, AutoServesBf16OnlyWhenTheRecordedDropIsWithinTheLimit) {
  PrecisionPolicy policy{PrecisionMode::kAuto, 0.01, /*fast_bf16=*/true};
  PrecisionChoice within = ChoosePrecision(policy, Metrics(0.900, 0.8905));
  EXPECT_TRUE(within.bfloat16) << within.reason;
  EXPECT_THAT(within.reason, HasSubstr("0.8905"));
  EXPECT_TRUE(ChoosePrecision(policy, Metrics(0.900, 0.920)).bfloat16);  // bf16 better
  PrecisionChoice over = ChoosePrecision(policy, Metrics(0.900, 0.880));
  EXPECT_FALSE(over.bfloat16);
  EXPECT_THAT(over.reason, HasSubstr("drop 0.0200"));
  policy.max_iou_drop = 0.05;
  EXPECT_TRUE(ChoosePrecision(policy, Metrics(0.900, 0.880)).bfloat16);
}

TEST(Precision, AutoKeepsFp32WithoutACheckOrWithoutFastBf16) {
  PrecisionPolicy policy{PrecisionMode::kAuto, 0.01, true};
  for (const nlohmann::json& metadata :
       {nlohmann::json(), nlohmann::json::object(), nlohmann::json{{"metrics", "x"}},
        nlohmann::json{{"metrics", {{"test_iou", 0.9}}}},
        nlohmann::json{{"metrics", {{"test_iou", 0.9}, {"test_iou_bf16", "0.9"}}}},
        nlohmann::json{{"metrics", {{"test_iou_bf16", 0.9}}}}}) {
    PrecisionChoice choice = ChoosePrecision(policy, metadata);
    EXPECT_FALSE(choice.bfloat16) << metadata.dump();
    EXPECT_THAT(choice.reason, HasSubstr("no bf16 accuracy check")) << metadata.dump();
  }
  policy.fast_bf16 = false;
  PrecisionChoice slow = ChoosePrecision(policy, Metrics(0.9, 0.9));
  EXPECT_FALSE(slow.bfloat16);
  EXPECT_THAT(slow.reason, HasSubstr("no fast bf16"));
}

TEST(Precision, NanMetricsNeverServeBf16) {
  PrecisionPolicy policy{PrecisionMode::kAuto, 0.01, true};
  nlohmann::json metadata = Metrics(0.9, 0.9);
  metadata["metrics"]["test_iou_bf16"] = std::nan("");
  EXPECT_FALSE(ChoosePrecision(policy, metadata).bfloat16);
}

TEST(Precision, CudaDevicesCountAsFastBf16) { EXPECT_TRUE(DeviceHasFastBf16("cuda:0")); }

}  // namespace
}  // namespace segserve::registry
