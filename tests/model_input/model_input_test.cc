// The model-input module: channel rules, BT.601 luma, normalisation (the image path and the
// [0, 1] batch path agree), tiling geometry, and the reference-statistics record's JSON
// round trip and validation.
#include "server/model_input/model_input.h"

#include <cmath>

#include "gtest/gtest.h"
#include "server/model_input/luma.h"
#include "server/model_input/reference_stats.h"
#include "server/model_input/tap_means.h"
#include "server/model_input/tiling.h"

namespace segserve::model_input {
namespace {

model::UnetConfig Config(int in_channels) {
  model::UnetConfig config;
  config.in_channels = in_channels;
  return model::WithDefaultNormalisation(config);
}

TEST(ChannelRules, AcceptGrayRgbRgbaAndNamedRefusals) {
  EXPECT_EQ(*ChannelRuleFor(3, 3, "x"), ChannelRule::kSame);
  EXPECT_EQ(*ChannelRuleFor(1, 3, "x"), ChannelRule::kReplicateGray);
  EXPECT_EQ(*ChannelRuleFor(4, 1, "x"), ChannelRule::kLuma);
  EXPECT_EQ(*ChannelRuleFor(4, 3, "x"), ChannelRule::kDropAlpha);
  absl::Status refused = ChannelRuleFor(3, 4, "source").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "source: has 3 channels; the model expects 4 (accepted: gray, RGB, RGBA)");
}

TEST(Luma, IsBt601) {
  EXPECT_FLOAT_EQ(Luma(1.f, 0.f, 0.f), 0.299f);
  EXPECT_FLOAT_EQ(Luma(0.f, 1.f, 0.f), 0.587f);
  EXPECT_FLOAT_EQ(Luma(0.f, 0.f, 1.f), 0.114f);
  EXPECT_NEAR(Luma(1.0, 1.0, 1.0), 1.0, 1e-6);
}

TEST(Normalisation, ImagePathAndBatchPathAgree) {
  // A 2x1 RGB image and the same pixels as a [0, 1] planar batch, to a gray model.
  data::Image image = data::Image::Create(2, 1, 3);
  image.bytes = {255, 0, 0, 51, 102, 204};
  auto planar = ToModelInput(image, Config(1));
  ASSERT_TRUE(planar.ok()) << planar.status();
  const float unit[6] = {1.f, 0.2f, 0.f, 0.4f, 0.f, 0.8f};  // R plane, G plane, B plane
  auto batch = UnitBatchToModelInput(unit, 1, 3, 2, 1, Config(1), "source");
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(planar->data.size(), 2u);
  ASSERT_EQ(batch->size(), 2u);
  const model::UnetConfig config = Config(1);
  const float expected0 = (Luma(1.f, 0.f, 0.f) - config.mean[0]) / config.std[0];
  EXPECT_NEAR(planar->data[0], expected0, 1e-6);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(planar->data[i], (*batch)[i], 1e-6);
}

TEST(Normalisation, GrayToRgbReplicatesWithImageNetStatistics) {
  data::Image gray = data::Image::Create(1, 1, 1);
  gray.bytes = {255};
  auto planar = ToModelInput(gray, Config(3));
  ASSERT_TRUE(planar.ok());
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(planar->data[c], (1.f - mean[c]) / stdv[c], 1e-5);
}

TEST(Tiling, OneTileForSmallImagesAndFullCoverForLargeOnes) {
  EXPECT_EQ(MakeTileGrid(100, 80, 512, 0.25).origins.size(), 1u);
  const TileGrid grid = MakeTileGrid(1000, 1000, 512, 0.25);
  EXPECT_EQ(grid.origins.back(), (std::pair<int, int>{1000 - 512, 1000 - 512}));
}

TEST(TapMeans, ImageOfTakesOneImageOfEveryLayer) {
  TapMeans batch = {LayerMeans{"stem", 2, 2, {1, 2, 3, 4}}, LayerMeans{"layer1", 2, 1, {5, 6}}};
  TapMeans second = ImageOf(batch, 1);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].images, 1);
  EXPECT_EQ(second[0].values, (std::vector<float>{3, 4}));
  EXPECT_EQ(second[1].values, (std::vector<float>{6}));
}

TEST(ReferenceStats, SamplesGiveStatisticsAndJsonRoundTrips) {
  LayerSamples layer{"encoder.stem", 2, {{0.f, 1.f}, {1.f, 1.f}, {2.f, 1.f}, {3.f, 1.f}}};
  ReferenceStats stats = ReferenceStatsFromSamples({layer}, 4);
  EXPECT_EQ(stats.images, 4);
  ASSERT_EQ(stats.layers.size(), 1u);
  EXPECT_FLOAT_EQ(stats.layers[0].mean[0], 1.5f);
  EXPECT_FLOAT_EQ(stats.layers[0].std[0], std::sqrt(1.25f));
  EXPECT_EQ(stats.layers[0].hist[0], (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(stats.layers[0].hist[1], (std::vector<double>{4, 0, 0, 0}));  // constant channel
  const nlohmann::json json = ToJson(stats);
  EXPECT_TRUE(json["layers"][0]["hist"][0][0].is_number_integer());
  auto parsed = ReferenceStatsFromJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(ToJson(*parsed), json);
}

TEST(ReferenceStats, MalformedRecordsNameTheField) {
  nlohmann::json json = ToJson(ReferenceStatsFromSamples({{"l", 1, {{0.f}, {1.f}}}}, 2));
  json["layers"][0]["hist"][0] = {1, 2, 3};
  absl::Status s = ReferenceStatsFromJson(json).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("reference_stats.layers[0].hist[0]"), std::string::npos) << s;
  json["bins"] = 0;
  EXPECT_NE(ReferenceStatsFromJson(json).status().message().find("reference_stats.bins"),
            std::string::npos);
  EXPECT_FALSE(ReferenceStatsFromJson(nlohmann::json{{"bins", 2}, {"layers", nlohmann::json::array()}}).ok());
}

}  // namespace
}  // namespace segserve::model_input
