#include <cmath>

#include "gtest/gtest.h"
#include "server/inference/preprocess.h"
#include "server/inference/tiling.h"

namespace segserve::inference {
namespace {

TEST(Tiling, SmallImagesAreOneTile) {
  const TileGrid grid = MakeTileGrid(300, 200, 512, 0.25);
  ASSERT_EQ(grid.origins.size(), 1u);
  EXPECT_EQ(grid.tile_height, 300);
  EXPECT_EQ(grid.tile_width, 200);
}

TEST(Tiling, TilesCoverTheImageWithTheRequestedOverlap) {
  for (int height : {513, 1000, 2000}) {
    for (int width : {700, 3000}) {
      const TileGrid grid = MakeTileGrid(height, width, 512, 0.25);
      std::vector<int> covered(static_cast<size_t>(height) * width, 0);
      for (auto [y, x] : grid.origins) {
        ASSERT_GE(y, 0);
        ASSERT_GE(x, 0);
        ASSERT_LE(y + grid.tile_height, height);
        ASSERT_LE(x + grid.tile_width, width);
        for (int yy = y; yy < y + grid.tile_height; ++yy) {
          for (int xx = x; xx < x + grid.tile_width; ++xx) ++covered[yy * width + xx];
        }
      }
      for (int c : covered) ASSERT_GE(c, 1) << height << "x" << width;
      // Neighbours along a row overlap by at least a quarter tile.
      const int step_limit = 512 - 512 / 4;
      for (size_t i = 1; i < grid.origins.size(); ++i) {
        if (grid.origins[i].first == grid.origins[i - 1].first) {
          EXPECT_LE(grid.origins[i].second - grid.origins[i - 1].second, step_limit);
        }
      }
    }
  }
}

TEST(Tiling, GaussianImportancePeaksInTheCentreAndNeverVanishes) {
  const auto weights = GaussianImportance(64, 96);
  ASSERT_EQ(weights.size(), 64u * 96);
  float max_weight = 0, min_weight = 1;
  for (float w : weights) {
    max_weight = std::max(max_weight, w);
    min_weight = std::min(min_weight, w);
  }
  EXPECT_FLOAT_EQ(max_weight, 1.0f);
  EXPECT_GT(min_weight, 0.0f);
  EXPECT_GT(weights[32 * 96 + 48], weights[0]);
}

TEST(Preprocess, RawTensorChecksDimensionsChannelsAndSize) {
  const std::string ok_bytes(18, 'x');
  auto view = RawTensorView(2, 3, 3, RawDType::kUInt8, ok_bytes, 100);
  ASSERT_TRUE(view.ok());
  // The view reads the request's bytes where they lie.
  EXPECT_EQ(view->bytes, reinterpret_cast<const uint8_t*>(ok_bytes.data()));
  EXPECT_NE(RawTensorView(0, 3, 3, RawDType::kUInt8, "", 100).status().message().find(
                "image.raw.height"),
            std::string::npos);
  EXPECT_NE(RawTensorView(20, 20, 3, RawDType::kUInt8, std::string(1200, 'x'), 100)
                .status()
                .message()
                .find("max_image_pixels"),
            std::string::npos);
  EXPECT_NE(RawTensorView(2, 3, 5, RawDType::kUInt8, std::string(30, 'x'), 100)
                .status()
                .message()
                .find("image.raw.channels"),
            std::string::npos);
  EXPECT_NE(RawTensorView(2, 3, 1, RawDType::kUInt16, std::string(7, 'x'), 100)
                .status()
                .message()
                .find("image.raw.data"),
            std::string::npos);
}

TEST(Preprocess, ConvertsChannelsAndNormalises) {
  model::UnetConfig rgb;
  rgb.in_channels = 3;
  rgb.mean = {0.5f, 0.5f, 0.5f};
  rgb.std = {0.25f, 0.25f, 0.25f};
  // A gray 16-bit pixel at full scale becomes (1 - 0.5) / 0.25 = 2 in every channel.
  std::string bytes = {'\xff', '\xff'};
  auto gray = RawTensorView(1, 1, 1, RawDType::kUInt16, bytes, 10);
  ASSERT_TRUE(gray.ok());
  auto planar = ToModelInput(*gray, rgb);
  ASSERT_TRUE(planar.ok());
  EXPECT_EQ(planar->data, (std::vector<float>{2, 2, 2}));
  // RGBA -> gray uses luma and drops alpha.
  model::UnetConfig mono;
  mono.in_channels = 1;
  mono.mean = {0};
  mono.std = {1};
  const std::string rgba_bytes{'\xff', 0, 0, 0};
  auto rgba = RawTensorView(1, 1, 4, RawDType::kUInt8, rgba_bytes, 10);
  auto luma = ToModelInput(*rgba, mono);
  ASSERT_TRUE(luma.ok());
  EXPECT_NEAR(luma->data[0], 0.299f, 1e-5);
  // RGB into a 4-channel model has no sensible conversion.
  model::UnetConfig four;
  four.in_channels = 4;
  const std::string rgb_bytes(3, 'x');
  auto rgb_image = RawTensorView(1, 1, 3, RawDType::kUInt8, rgb_bytes, 10);
  EXPECT_EQ(ToModelInput(*rgb_image, four).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve::inference
