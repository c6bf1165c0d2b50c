#include "server/model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve::model {
namespace {

using ::testing::HasSubstr;

TEST(ModelConfigTest, DefaultConfigIsValid) { EXPECT_TRUE(Validate(UnetConfig{}).ok()); }

TEST(ModelConfigTest, EncoderNamesRoundTrip) {
  for (EncoderKind kind : {EncoderKind::kResNet18, EncoderKind::kResNet34}) {
    auto parsed = ParseEncoderKind(EncoderName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  auto bad = ParseEncoderKind("resnet50");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("resnet50"));
}

TEST(ModelConfigTest, ValidateNamesFieldAndLimit) {
  UnetConfig c;
  c.skip_prune_level = 5;
  EXPECT_THAT(Validate(c).message(), HasSubstr("skip_prune_level must be in [0, 4]"));
  c = UnetConfig{};
  c.in_channels = 0;
  EXPECT_THAT(Validate(c).message(), HasSubstr("in_channels must be in [1, 4]"));
  c = UnetConfig{};
  c.classes = 1;
  EXPECT_THAT(Validate(c).message(), HasSubstr("classes must be >= 2"));
  c = UnetConfig{};
  c.mean = {0.5f};
  EXPECT_THAT(Validate(c).message(), HasSubstr("mean must have in_channels (3)"));
  c = UnetConfig{};
  c.std = {1.0f, 0.0f, 1.0f};
  EXPECT_THAT(Validate(c).message(), HasSubstr("std values must be finite and > 0"));
}

TEST(ModelConfigTest, DefaultNormalisationDependsOnChannels) {
  UnetConfig rgb = WithDefaultNormalisation(UnetConfig{});
  EXPECT_THAT(rgb.mean, ::testing::ElementsAre(0.485f, 0.456f, 0.406f));
  UnetConfig mr;
  mr.in_channels = 1;
  mr = WithDefaultNormalisation(mr);
  EXPECT_THAT(mr.mean, ::testing::ElementsAre(0.5f));
  EXPECT_THAT(mr.std, ::testing::ElementsAre(0.5f));
}

TEST(ModelConfigTest, JsonRoundTrip) {
  UnetConfig c;
  c.encoder = EncoderKind::kResNet34;
  c.skip_prune_level = 1;
  c.in_channels = 4;
  c.classes = 3;
  c.mean = {0.1f, 0.2f, 0.3f, 0.4f};
  c.std = {1.0f, 2.0f, 3.0f, 4.0f};
  auto parsed = UnetConfigFromJson(ToJson(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, c);
  EXPECT_EQ(ToJson(c)["encoder"], "resnet34");
}

TEST(ModelConfigTest, JsonRejectsBadInput) {
  EXPECT_EQ(UnetConfigFromJson(nlohmann::json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
  nlohmann::json j = ToJson(UnetConfig{});
  j["classes"] = "two";
  EXPECT_THAT(UnetConfigFromJson(j).status().message(), HasSubstr("config.classes"));
  j = ToJson(UnetConfig{});
  j["skip_prune_level"] = 7;
  EXPECT_THAT(UnetConfigFromJson(j).status().message(), HasSubstr("skip_prune_level"));
  j = ToJson(UnetConfig{});
  j.erase("mean");
  j.erase("std");
  auto defaults = UnetConfigFromJson(j);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->mean.size(), 3u);
}

}  // namespace
}  // namespace segserve::model
